"""Feeds over a real local HTTP server: every format, conditional GET, backoff, CLI and beat task."""

import io
import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tests.helpers.http_server import http_server
from tests.ingest.feed_builders import PARA, XML, rss2, text
from worker import tasks
from worker.ingest import feeds
from worker.models import Article, IngestRejection, Newsletter, Source


def feed_source(url: str) -> Source:
    return Source.objects.create(name="Port", kind=Source.Kind.FEED, url=url)


ATOM = f"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
<id>urn:a</id><updated>2026-11-20T10:00:00Z</updated><entry><title>Atom story</title><id>urn:a:1</id>
<link href="https://port.example/atom-1"/><updated>2026-11-20T10:00:00Z</updated><author><name>Ana Atom</name></author>
<content type="html">&lt;p&gt;{text("atom")}&lt;/p&gt;</content></entry></feed>""".encode()
RSS1 = f"""<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://port.example/"><title>R1</title><link>https://port.example/</link><description>d</description>
</channel><item rdf:about="https://port.example/rss1-1"><title>RSS 1.0 story</title><link>https://port.example/rss1-1</link>
<description>{text("rss1")}</description><dc:date>2026-11-19T08:00:00Z</dc:date></item></rdf:RDF>""".encode()
RSS091 = f"""<?xml version="1.0"?><rss version="0.91"><channel><title>Old</title><link>https://port.example/</link>
<description>d</description><language>en</language><item><title>RSS 0.91 story</title>
<link>https://port.example/rss091-1</link><description>{text("rss091")}</description></item></channel></rss>""".encode()
JSON_FEED = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
    {"id": "j1", "url": "https://port.example/json-1", "title": "JSON Feed story", "content_text": text("json"),
     "date_published": "2026-11-18T07:00:00Z", "authors": [{"name": "Jo Json"}]}]}).encode()


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "content_type", "title", "author"), [
    (ATOM, "application/atom+xml", "Atom story", "Ana Atom"),
    (RSS1, "application/rdf+xml", "RSS 1.0 story", ""),
    (RSS091, "text/xml", "RSS 0.91 story", ""),
    (JSON_FEED, "application/feed+json", "JSON Feed story", "Jo Json"),
    (rss2([{"title": "RSS 2.0 story", "link": "https://port.example/rss2-1", "html": f"<p>{text('rss2')}</p>",
            "date": "Wed, 18 Nov 2026 07:00:00 GMT"}]), "application/rss+xml", "RSS 2.0 story", ""),
], ids=["atom", "rss1.0", "rss0.91", "jsonfeed", "rss2.0"])
def test_it_reads_every_feed_format(allow_local, body, content_type, title, author):
    with http_server({"/feed": (200, {"Content-Type": content_type}, body)}) as (base, _):
        report = feeds.poll_source(feed_source(f"{base}/feed"))
    assert (report.new, report.rejected, report.error) == (1, 0, "")
    article = Article.objects.get()
    assert (article.title, article.author) == (title, author)
    assert article.text.startswith(PARA)


@pytest.mark.django_db
def test_conditional_get_sends_etag_and_last_modified_and_honours_304(allow_local):
    def conditional(handler):
        if handler.headers.get("If-None-Match") == '"v1"':
            return 304, {}, b""
        return 200, {**XML, "ETag": '"v1"', "Last-Modified": "Wed, 18 Nov 2026 07:00:00 GMT"}, rss2(
            [{"title": "T", "link": "https://port.example/1", "html": text("c")}])

    with http_server({"/feed": conditional}) as (base, seen):
        source = feed_source(f"{base}/feed")
        first = feeds.poll_source(source, force=True)
        second = feeds.poll_source(source, force=True)
    assert (first.new, second.not_modified) == (1, True)
    assert seen[1][1]["If-None-Match"] == '"v1"'
    assert seen[1][1]["If-Modified-Since"] == "Wed, 18 Nov 2026 07:00:00 GMT"


@pytest.mark.django_db
def test_repolling_an_unchanged_feed_creates_nothing(allow_local):
    feed = rss2([{"title": "T", "link": "https://port.example/1", "guid": "g1", "html": text("same")}])
    with http_server({"/feed": (200, XML, feed)}) as (base, _):
        source = feed_source(f"{base}/feed")
        feeds.poll_source(source, force=True)
        again = feeds.poll_source(source, force=True)
    assert (again.new, again.updated, again.known) == (0, 0, 1)
    assert Article.objects.count() == 1


@pytest.mark.django_db
def test_a_failing_feed_backs_off_exponentially_up_to_the_cap(allow_local, settings):
    settings.NEWSDIGEST_FEED_BACKOFF_MAX_MINUTES = 200
    with http_server({}) as (base, _):
        source = feed_source(f"{base}/missing")
        waits = []
        for _ in range(4):
            before = timezone.now()
            with time_machine.travel(before, tick=False):  # the wait is counted from the poll's own clock
                feeds.poll_source(source, force=True)
            source.refresh_from_db()
            waits.append((source.next_poll_at - before) / timedelta(minutes=1))
    assert waits == [60, 120, 200, 200]
    assert source.error_count == 4 and "HTTP 404" in source.last_error
    assert IngestRejection.objects.filter(source=source).count() == 4


@pytest.mark.django_db
def test_a_recovered_feed_resets_its_error_count(allow_local):
    feed = rss2([{"title": "T", "link": "https://port.example/1", "html": text("ok")}])
    with http_server({"/feed": (200, XML, feed)}) as (base, _):
        source = feed_source(f"{base}/feed")
        Source.objects.filter(pk=source.pk).update(error_count=3, last_error="boom")
        source.refresh_from_db()
        feeds.poll_source(source, force=True)
    source.refresh_from_db()
    assert (source.error_count, source.last_error) == (0, "")


@pytest.mark.django_db
def test_only_due_feeds_are_polled(allow_local):
    feed = rss2([{"title": "T", "link": "https://port.example/1", "html": text("due")}])
    with http_server({"/feed": (200, XML, feed)}) as (base, seen):
        due = feed_source(f"{base}/feed")
        Source.objects.create(name="later", kind=Source.Kind.FEED, url=f"{base}/later",
                              next_poll_at=timezone.now() + timedelta(hours=1))
        assert feeds.due_source_ids() == [due.pk]
        tasks.poll_feeds.delay()
    assert [path for path, _ in seen] == ["/feed"]


@pytest.mark.django_db
def test_an_entry_with_only_a_link_gets_its_page_fetched(allow_local):
    page = (f"<html lang='en'><head><title>Full page</title></head><body><article><h1>Full page</h1>"
            f"<p>{text('page', 3)}</p><p>{text('page2', 3)}</p></article></body></html>").encode()
    with http_server({"/page": (200, {"Content-Type": "text/html"}, page)}) as (base, seen):
        feed = rss2([{"title": "Linked", "link": f"{base}/page"}])
        with http_server({"/feed": (200, XML, feed)}) as (feed_base, _):
            report = feeds.poll_source(feed_source(f"{feed_base}/feed"))
    article = Article.objects.get()
    assert report.new == 1 and article.title == "Linked" and "page2 fact 2" in article.text
    assert article.language == "en"


@pytest.mark.django_db
def test_a_short_entry_whose_page_fails_keeps_the_feed_text(allow_local):
    with http_server({}) as (base, _):
        feed = rss2([{"title": "Teaser", "link": f"{base}/gone", "html": "<p>A short teaser of the port story.</p>"}])
        with http_server({"/feed": (200, XML, feed)}) as (feed_base, _):
            report = feeds.poll_source(feed_source(f"{feed_base}/feed"))
    assert report.new == 1
    assert Article.objects.get().text == "A short teaser of the port story."


@pytest.mark.django_db(transaction=True)
def test_new_feed_articles_are_summarized_after_commit(allow_local):
    feed = rss2([{"title": "T", "link": "https://port.example/1", "html": text("sum")}])
    with http_server({"/feed": (200, XML, feed)}) as (base, _):
        feeds.poll_source(feed_source(f"{base}/feed"))
    assert Article.objects.get().status == Article.Status.SUMMARIZED


@pytest.mark.django_db
def test_cli_adds_lists_and_polls_feeds(allow_local):
    Newsletter.objects.create(name="Port", slug="port")
    feed = rss2([{"title": "T", "link": "https://port.example/1", "html": text("cli")}])
    out = io.StringIO()
    with http_server({"/feed": (200, XML, feed)}) as (base, _):
        call_command("feeds", "add", f"{base}/feed", "--newsletter", "port", "--name", "Port feed", stdout=out)
        call_command("feeds", "poll", stdout=out, stderr=out)
        call_command("feeds", "poll", stdout=out, stderr=out)
        call_command("feeds", "list", stdout=out)
    source = Source.objects.get()
    assert (source.name, source.newsletter.slug, source.kind) == ("Port feed", "port", Source.Kind.FEED)
    lines = out.getvalue().splitlines()
    assert "Port feed: 1 new, 0 updated, 0 known, 0 refused" in lines
    assert "polled 0 feed(s)" in lines  # the second poll: nothing due yet
    assert any(line.startswith(f"{source.pk}\tPort feed\t") and line.endswith("ok") for line in lines)


@pytest.mark.django_db
def test_adding_a_feed_registers_the_beat_schedule_once():
    feeds.add_feed("https://port.example/feed.xml")
    feeds.add_feed("https://port.example/other.xml")
    task = PeriodicTask.objects.get(name=feeds.POLL_TASK_NAME)
    assert (task.task, task.interval.every, task.enabled) == ("worker.tasks.poll_feeds", 5, True)


@pytest.mark.django_db
def test_cli_refuses_a_non_http_feed_url():
    with pytest.raises(Exception, match="not an http"):
        call_command("feeds", "add", "ftp://port.example/feed")
