"""Editors see reader signals: the desk, the ops console, the archive, /metrics, the Atom feed."""

import html
from xml.etree import ElementTree

import pytest
from django.utils import timezone

from tests.helpers.factories import make_digest
from worker import schedule
from worker.models import (
    Article,
    ClickCount,
    Delivery,
    Digest,
    Newsletter,
    Source,
    Subscriber,
    Summary,
)

pytestmark = pytest.mark.django_db
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def sent() -> Digest:
    """A sent issue with one recipient; its first story had 1 reader click and 4 scanner hits."""
    digest = make_digest(3)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT, sent_at=timezone.now())
    digest.refresh_from_db()
    subscriber = Subscriber.objects.get(subscriptions__newsletter=digest.newsletter)
    Delivery.objects.create(digest=digest, subscriber=subscriber, status=Delivery.Status.SENT, sent_at=timezone.now())
    first = digest.items.get(position=0)
    ClickCount.objects.create(item=first, url=first.article.url, clicks=1, filtered=4)
    return digest


def test_the_desk_shows_each_storys_clicks_and_click_through(admin_client, sent):
    page = admin_client.get(f"/desk/digests/{sent.pk}/").content.decode()
    assert "1 reader click</strong> · 100.0% click-through" in page
    assert "4 scanner hits not counted" in page
    assert page.count('data-clicks="0"') == 2  # the two stories nobody clicked


def test_the_desk_says_why_a_story_ranked_where_it_did(admin_client):
    newsletter = Newsletter.objects.create(name="Daily", slug="daily")
    source = Source.objects.create(name="Fresh Source", newsletter=newsletter)
    article = Article.objects.create(source=source, title="Hello", text="Hello " * 50, content_hash="h1",
                                     status=Article.Status.SUMMARIZED, published_at=timezone.now())
    Summary.objects.create(article=article, content_hash="h1", engine="offline", headline="Hello", summary="Hi",
                           topics=["Science"])
    digest = schedule.build_digest(newsletter)
    page = html.unescape(admin_client.get(f"/desk/digests/{digest.pk}/").content.decode())
    assert "Why here: score" in page
    assert "source Fresh Source lift 1.00" in page
    assert "new, starts at the average" in page
    assert "topic science lift 1.00" in page


def test_the_ops_console_shows_per_digest_totals(admin_client, sent):
    listing = admin_client.get("/desk/ops/").content.decode()
    assert "1 (100.0%)" in listing and "+4 scanner" in listing
    page = admin_client.get(f"/desk/ops/digests/{sent.pk}/").content.decode()
    assert '<b id="clicks">1</b>' in page
    assert '<b id="scanner-hits">4</b>' in page


def test_the_archive_shows_clicks_and_the_most_read_story(client, sent):
    page = html.unescape(client.get(f"/archive/{sent.newsletter.slug}/").content.decode())
    assert "1 (100.0% click-through)" in page
    assert f"{sent.items.get(position=0).headline} (1)" in page


def test_metrics_export_reader_and_scanner_clicks(client, sent):
    text = client.get("/metrics").content.decode()
    # prometheus_client: counters end in _total, labels in name order, values as Go floats.
    assert 'newsdigest_clicks_total{kind="reader",newsletter="demo"} 1.0' in text
    assert 'newsdigest_clicks_total{kind="scanner",newsletter="demo"} 4.0' in text
    assert "newsdigest_clicks_pending 0.0" in text


def test_the_archive_is_an_atom_feed_of_sent_issues(client, sent):
    make_digest(1, slug="other", name="Other")  # another newsletter's issue stays out
    response = client.get(f"/archive/{sent.newsletter.slug}/feed.atom")
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = ElementTree.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [sent.subject]
    assert entries[0].find(f"{ATOM}link").get("href").endswith(f"/digests/{sent.pk}/")
    assert sent.items.get(position=0).headline in entries[0].find(f"{ATOM}summary").text


def test_a_private_archive_has_no_feed(client, sent):
    Newsletter.objects.filter(pk=sent.newsletter_id).update(public_archive=False)
    assert client.get(f"/archive/{sent.newsletter.slug}/feed.atom").status_code == 404


def test_the_feed_leaves_out_drafts(client, sent):
    make_digest(1, slug="demo2")
    Digest.objects.filter(pk=sent.pk).update(status=Digest.Status.DRAFT)
    feed = ElementTree.fromstring(client.get(f"/archive/{sent.newsletter.slug}/feed.atom").content)
    assert feed.findall(f"{ATOM}entry") == []


def test_the_preferences_page_says_what_is_counted(client, sent):
    from worker import render

    subscriber = Subscriber.objects.get(subscriptions__newsletter=sent.newsletter)
    page = client.get(f"/preferences/{render.preferences_token(subscriber)}").content.decode()
    assert "What we count" in page
    assert "no tracking pixel" in page
