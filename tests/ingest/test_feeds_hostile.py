"""Feeds built to hurt: entity bombs, feed bodies that name local files, nesting, bad redirects, control
characters. Each ends in a recorded refusal; the poll of the other feeds goes on; nothing hostile is stored."""

import json

import pytest
from django.core.management import call_command

from tests.helpers.http_server import http_server
from tests.ingest.feed_builders import XML, rss2, text
from worker.ingest import articles, feeds
from worker.models import Article, IngestRejection, Source


def entity_bomb(references: int, malformed: bool) -> bytes:
    """One 1,000-character entity referenced `references` times: 4 KB of feed, a million characters of text."""
    return (f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY e "{"A" * 1000}">\n]>\n<rss version="2.0"><channel>'
            f"<title>x</title><item><title>Bomb</title><guid>bomb</guid><description>{'&e;' * references}"
            f"</description></item>{'<broken' if malformed else ''}</channel></rss>").encode()


def poll_one(route) -> tuple[feeds.PollReport, Source]:
    with http_server({"/feed": route}) as (base, _):
        source = Source.objects.create(name="Hostile", kind=Source.Kind.FEED, url=f"{base}/feed")
        report = feeds.poll_source(source)
    source.refresh_from_db()
    return report, source


@pytest.mark.django_db
@pytest.mark.parametrize(("references", "malformed"), [(1000, False), (30_000, True)],
                         ids=["4kb-well-formed", "90kb-malformed"])
def test_an_entity_bomb_is_refused_unread(allow_local, references, malformed):
    report, source = poll_one((200, XML, entity_bomb(references, malformed)))
    assert "declares its own XML entities" in report.error
    assert Article.objects.count() == 0
    assert "declares its own XML entities" in IngestRejection.objects.get(source=source).reason


@pytest.mark.django_db
def test_a_feed_body_naming_a_local_file_is_not_read_from_disk(allow_local, tmp_path):
    local = tmp_path / "secret-feed.xml"
    local.write_bytes(rss2([{"title": "Secret", "guid": "secret", "html": text("secret")}]))
    report, _ = poll_one((200, XML, str(local).encode()))
    assert "not a feed" in report.error
    assert Article.objects.count() == 0


@pytest.mark.django_db
def test_a_deeply_nested_json_feed_is_a_recorded_error(allow_local):
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    report, source = poll_one((200, {"Content-Type": "application/feed+json"}, body))
    assert report.error.endswith("JSON is nested too deeply to be a feed")
    assert source.error_count == 1


@pytest.mark.django_db
def test_a_redirect_to_an_invalid_port_is_a_recorded_error(allow_local):
    report, source = poll_one((302, {"Location": "http://127.0.0.1:99999/feed"}, b""))
    assert "bad port in URL http://127.0.0.1:99999/feed" in report.error
    assert (source.error_count, IngestRejection.objects.filter(source=source).count()) == (1, 1)


@pytest.mark.django_db
def test_feeds_poll_goes_on_after_feeds_that_used_to_abort_it(allow_local):
    routes = {"/nested": (200, {"Content-Type": "application/feed+json"}, b"[" * 200_000),
              "/bad-port": (302, {"Location": "http://127.0.0.1:99999/x"}, b""),
              "/good": (200, XML, rss2([{"title": "Good", "guid": "good", "html": text("good")}]))}
    with http_server(routes) as (base, _):
        for path in routes:
            Source.objects.create(name=path, kind=Source.Kind.FEED, url=f"{base}{path}")
        call_command("feeds", "poll")
    assert Article.objects.get().title == "Good"
    assert sorted(Source.objects.exclude(last_error="").values_list("name", flat=True)) == ["/bad-port", "/nested"]


@pytest.mark.django_db
def test_control_characters_in_a_feed_entry_are_stripped_or_refused(allow_local):
    entries = [{"title": "Nul\x01 title", "guid": "guid-\x00-1", "html": text("nul")},
               {"title": "Bad link", "guid": "bad-link", "link": "https://port.example/a\x00b", "html": text("b")}]
    body = rss2(entries).replace(b"\x00", b"&#0;")
    report, source = poll_one((200, XML, body))
    assert (report.new, report.rejected) == (1, 1)
    article = Article.objects.get()
    assert (article.title, article.guid) == ("Nul title", "guid--1")
    refused = IngestRejection.objects.get(source=source, target="https://port.example/a\\x00b")
    assert refused.reason == "entry 'bad-link': url contains control characters: https://port.example/a\\x00b"


@pytest.mark.django_db
def test_a_nul_in_an_api_record_url_is_refused_and_recorded():
    with pytest.raises(articles.IngestError, match="url contains control characters"):
        articles.ingest_record({"title": "T", "text": text("api"), "url": "https://port.example/\x00"})
    rejection = articles.record_rejection(None, "https://port.example/\x00", "reason with \x00")
    assert (rejection.target, rejection.reason) == ("https://port.example/\\x00", "reason with \\x00")


@pytest.mark.django_db
def test_a_nul_in_a_guid_or_author_of_a_record_is_stripped():
    result = articles.ingest_record({"title": "T\x00", "text": text("g"), "guid": "g\x00", "author": "A\x00nn"})
    assert (result.article.title, result.article.guid, result.article.author) == ("T", "g", "Ann")


@pytest.mark.django_db
def test_a_json_feed_item_with_nul_in_its_id_is_stored_without_it(allow_local):
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [
        {"id": "x\x00y", "title": "J", "content_text": text("json")}]}).encode()
    report, _ = poll_one((200, {"Content-Type": "application/feed+json"}, body))
    assert (report.new, Article.objects.get().guid) == (1, "xy")
