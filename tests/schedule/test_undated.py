"""Undated articles: no made-up date on the page, and no rank from when they happened to be ingested."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers.factories import make_digest, summarized_article
from worker import render, schedule
from worker.ingest import articles
from worker.models import Article, Newsletter

pytestmark = pytest.mark.django_db

PAGE = """<html><head><title>Harbour Bridge reopens</title></head><body><article><h1>Harbour Bridge reopens</h1>
<p>The council voted on Tuesday to reopen the Harbour Bridge after two years of repairs. Mayor Elena Vasquez
welcomed the decision and said traffic would return next week.</p>
<p>Engineers said the new deck can carry heavier lorries than the old one.</p></article>
<footer>Copyright 2025 Riverton Times</footer></body></html>"""


def test_a_page_without_a_date_is_not_dated_from_its_copyright_line():
    assert articles.extract_html(PAGE, "https://news.example/bridge").get("published_at") is None


def test_a_page_keeps_its_published_time():
    dated = PAGE.replace("<head>", '<head><meta property="article:published_time" content="2025-03-04T10:20:00Z">')
    published = articles.parse_date(articles.extract_html(dated, "https://news.example/bridge")["published_at"])
    assert published.date().isoformat() == "2025-03-04"


def test_an_undated_story_shows_no_date_in_the_email():
    digest = make_digest(stories=2)
    Article.objects.filter(digestitem__digest=digest).update(published_at=None)
    stories, _ = render._stories(digest, render.newsletter_zone(digest.newsletter))
    assert [story["when"] for story in stories] == ["", ""]
    assert "1 Jan" not in render.ensure_rendered(digest).text


def test_undated_stories_rank_between_todays_and_last_weeks_news_by_content_not_ingestion_order():
    newsletter = Newsletter.objects.create(name="Morning", slug="morning", max_stories=10)
    now = timezone.now()
    stale = summarized_article(None, "Dated last week", published=now - timedelta(days=7))
    full = summarized_article(None, "Undated, ingested first", text="A full account. " * 40)
    Article.objects.filter(pk=full.pk).update(created_at=now - timedelta(days=5))
    summarized_article(None, "Undated, ingested just now")
    summarized_article(None, "Dated this morning", published=now - timedelta(hours=1))
    titles = [a.title for a in schedule.candidate_articles(newsletter)]
    assert titles == ["Dated this morning", "Undated, ingested first", "Undated, ingested just now",
                      stale.title]
