"""Hostile feeds and servers: a precise outcome for each, a bad entry never blocks its siblings,
every refusal logged and stored."""

import json
import logging
import threading

import pytest

from tests.helpers.http_server import http_server
from tests.ingest.feed_builders import XML, rss2, text
from worker.ingest import articles, feeds, fetch
from worker.models import Article, IngestRejection, Source


def poll(routes: dict, path: str = "/feed") -> tuple[feeds.PollReport, Source]:
    with http_server(routes) as (base, _):
        source = Source.objects.create(name="Hostile", kind=Source.Kind.FEED, url=f"{base}{path}")
        report = feeds.poll_source(source)
    source.refresh_from_db()
    return report, source


GOOD = {"title": "Good", "link": "https://port.example/good", "guid": "good", "html": text("good")}
# Cut inside the second entry's CDATA: feedparser's loose parser still yields both entries, the second empty.
TRUNCATED = rss2([GOOD, {"title": "Second", "guid": "second", "html": text("second")}])[:-25]

# (name, HTTP route, error the whole poll fails with)
FAILED_FEEDS = [
    ("invalid-xml", (200, XML, b"<<<>>> not xml at all &&&"), "not a feed: <unknown>:2:1: not well-formed"),
    ("html-as-feed", (200, {"Content-Type": "text/html"}, b"<!doctype html><html><body>Hi</body></html>"),
     "not a feed: the server sent an HTML page"),
    ("empty-body", (200, XML, b""), "not a feed"),
    ("binary", (200, {"Content-Type": "application/octet-stream"}, bytes(range(256)) * 4), "not a feed"),
    ("json-not-jsonfeed", (200, {"Content-Type": "application/json"}, b'{"items": []}'), "not a JSON Feed"),
    ("jsonfeed-broken", (200, {"Content-Type": "application/feed+json"}, b'{"version": "https://jsonfe'),
     "invalid JSON"),
    ("http-404", (404, {}, b"gone"), "HTTP 404"),
    ("http-500", (500, {}, b"oops"), "HTTP 500"),
    ("redirect-loop", (302, {"Location": "/feed"}, b""), "redirect loop"),
    ("redirect-to-metadata", (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""), "not public"),
    ("redirect-to-file", (302, {"Location": "file:///etc/passwd"}, b""), "only http and https"),
    ("over-size-cap", (200, XML, b"<rss>" + b" " * 3000 + b"</rss>"), "over the 2000-byte limit"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "route", "error"), FAILED_FEEDS, ids=[c[0] for c in FAILED_FEEDS])
def test_unreadable_feed_fails_with_a_reason_and_backs_off(allow_local, settings, caplog, name, route, error):
    settings.NEWSDIGEST_FETCH_MAX_BYTES = 2000
    with caplog.at_level(logging.WARNING, logger="newsdigest.ingest"):
        report, source = poll({"/feed": route})
    assert error in report.error
    assert (source.error_count, error in source.last_error) == (1, True)
    assert source.next_poll_at > source.last_polled_at
    rejection = IngestRejection.objects.get()
    assert (rejection.source, error in rejection.reason) == (source, True)
    assert error in caplog.text and not Article.objects.exists()


@pytest.mark.django_db
def test_a_timeout_fails_the_poll_without_waiting_for_the_server(allow_local, settings):
    settings.NEWSDIGEST_FETCH_TIMEOUT = 0.3
    release, answered = threading.Event(), threading.Event()

    def slow(handler):
        release.wait(60)  # holds the answer until the poll is over (or a minute passes)
        answered.set()
        return 200, XML, rss2([GOOD])

    try:
        report, source = poll({"/feed": slow})
        # The poll gave up on its own timeout while the server was still holding the answer back.
        assert not answered.is_set()
    finally:
        release.set()
    assert "timed out" in report.error
    assert source.error_count == 1


@pytest.mark.django_db
def test_too_many_redirects_are_refused(allow_local):
    routes = {f"/r{i}": (302, {"Location": f"/r{i + 1}"}, b"") for i in range(7)}
    report, _ = poll(routes, "/r0")
    assert "too many redirects (more than 5)" in report.error


@pytest.mark.django_db
def test_a_truncated_feed_keeps_the_entries_before_the_break(allow_local):
    report, source = poll({"/feed": (200, XML, TRUNCATED)})
    assert [a.title for a in Article.objects.all()] == ["Good"]
    assert report.error == "" and source.error_count == 0
    reasons = list(IngestRejection.objects.order_by("pk").values_list("reason", flat=True))
    assert reasons[0].startswith("feed is malformed (<unknown>:1:")
    assert reasons[0].endswith("unclosed token); read 2 of the 2 entries in it (none lost); "
                               "entries from number 2 on may be incomplete")
    assert reasons[1:] == ["entry 'second': entry has neither text nor a link"]


@pytest.mark.django_db
def test_a_10k_entry_feed_reads_the_first_entries_and_refuses_the_rest_once(allow_local, settings):
    settings.NEWSDIGEST_FEED_MAX_ENTRIES = 20
    entries = [{"title": f"Story {i}", "guid": f"g{i}", "html": f"Entry number {i} of a very long feed."}
               for i in range(10_000)]
    report, _ = poll({"/feed": (200, XML, rss2(entries))})
    assert (report.new, Article.objects.count()) == (20, 20)
    reason = IngestRejection.objects.get().reason
    assert reason == "feed has 10000 entries; read the first 20 and refused the other 9980"


@pytest.mark.django_db
def test_bad_entries_are_refused_without_blocking_their_siblings(allow_local):
    entries = [
        {"guid": "empty"},  # neither text nor link
        GOOD,
        {"title": "Scripts only", "guid": "scripts", "html": "<script>steal()</script><iframe src='x'></iframe>"},
        {"title": "Private link", "guid": "private", "link": "http://10.0.0.1/admin"},
        {"title": "Js link", "guid": "js", "link": "javascript:alert(1)"},
    ]
    report, source = poll({"/feed": (200, XML, rss2(entries))})
    assert (report.new, report.rejected) == (1, 4)
    reasons = sorted(IngestRejection.objects.filter(source=source).values_list("reason", flat=True))
    assert reasons == [
        "entry 'empty': entry has neither text nor a link",
        "entry 'js': entry has neither text nor a link",
        "entry 'private': entry has no text and its page failed: refused to fetch 10.0.0.1: address 10.0.0.1 is "
        "not public (private, loopback, link-local, multicast, reserved or metadata); allow it with "
        "NEWSDIGEST_FETCH_ALLOW",
        "entry 'scripts': entry has neither text nor a link",
    ]


@pytest.mark.django_db
def test_an_entry_whose_page_is_404_is_refused_and_siblings_stored(allow_local):
    with http_server({}) as (pages, _):
        report, _ = poll({"/feed": (200, XML, rss2([GOOD, {"title": "Dead", "guid": "dead",
                                                          "link": f"{pages}/dead"}]))})
    assert (report.new, report.rejected) == (1, 1)
    assert "HTTP 404" in IngestRejection.objects.get().reason


@pytest.mark.django_db
def test_duplicate_guids_with_different_content_keep_the_later_text(allow_local):
    entries = [{"title": "First", "guid": "same", "html": text("first")},
               {"title": "Second", "guid": "same", "html": text("second")}]
    report, _ = poll({"/feed": (200, XML, rss2(entries))})
    article = Article.objects.get()
    assert (report.new, report.updated) == (1, 1)
    assert (article.title, "second fact" in article.text) == ("Second", True)


@pytest.mark.django_db
def test_entries_without_dates_or_titles_are_kept(allow_local):
    report, _ = poll({"/feed": (200, XML, rss2([{"guid": "untitled", "html": text("untitled")}]))})
    article = Article.objects.get()
    assert report.new == 1 and article.published_at is None
    assert article.title == ("Engineers at the Riverton port said on Wednesday that the new cranes had doubled the "
                             "number of…")


@pytest.mark.django_db
def test_scripts_in_entry_html_never_reach_the_text(allow_local):
    html = f"<script>document.write('EVIL')</script><p>{text('clean')}</p><iframe src='https://x'>EVIL</iframe>"
    poll({"/feed": (200, XML, rss2([{"title": "T", "guid": "t", "html": html}]))})
    assert "EVIL" not in Article.objects.get().text


@pytest.mark.django_db
def test_a_jsonfeed_item_that_is_not_an_object_is_refused_alone(allow_local):
    doc = {"version": "https://jsonfeed.org/version/1.1", "items": [
        "junk", {"id": "ok", "title": "Fine", "content_text": text("fine")}]}
    report, _ = poll({"/feed": (200, {"Content-Type": "application/feed+json"}, json.dumps(doc).encode())})
    assert (report.new, report.rejected) == (1, 1)
    assert IngestRejection.objects.get().reason == "entry '#0': entry has neither text nor a link"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://169.254.169.254/latest",
                                 "http://[::1]:9/x", "http://10.1.2.3/x", "http://192.168.0.1/x",
                                 "http://224.0.0.1/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x"])
def test_private_and_special_addresses_are_refused_without_an_allow_list(url):
    with pytest.raises(fetch.FetchError, match="is not public"):
        fetch.fetch(url)


@pytest.mark.django_db
def test_ingest_url_refuses_a_non_http_scheme():
    with pytest.raises(articles.IngestError, match="only http and https"):
        articles.ingest_url("file:///etc/passwd")


@pytest.mark.django_db
def test_an_allowed_cidr_lets_the_local_server_through(settings):
    settings.NEWSDIGEST_FETCH_ALLOW = ["127.0.0.0/8"]
    page = f"<html><body><article><p>{text('cidr')}</p></article></body></html>".encode()
    with http_server({"/a": (200, {"Content-Type": "text/html; charset=utf-8"}, page)}) as (base, _):
        result = articles.ingest_url(f"{base}/a?utm_source=x#frag")
    assert result.created and result.article.canonical_url == f"{base}/a"
