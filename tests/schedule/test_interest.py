"""Reader interest in ranking: what a small click log changes, decay, the floor for new sources."""

from datetime import timedelta

import pytest
from django.utils import timezone

from worker import interest, schedule
from worker.interest import Observation
from worker.models import (
    Article,
    ClickCount,
    Delivery,
    Digest,
    DigestItem,
    Newsletter,
    Source,
    Story,
    StoryRank,
    Subscriber,
    Summary,
)

pytestmark = pytest.mark.django_db


def obs(source: str, clicks: float, impressions: float = 1000, age: float = 0, topics=("news",)) -> Observation:
    return Observation(source=source, topics=tuple(topics), age_days=age, impressions=impressions, clicks=clicks)


def test_a_source_readers_click_more_is_lifted_and_one_they_ignore_is_lowered():
    model = interest.learn([obs("a", 100), obs("b", 10)], half_life_days=14, floor=0.2, cap=5, weight=1)
    assert model.lift("source:a") > 1 > model.lift("source:b")


def test_a_new_source_starts_at_the_average():
    model = interest.learn([obs("a", 100), obs("b", 10)], half_life_days=14, floor=0.2, cap=5, weight=1)
    assert model.lift("source:never-mailed") == pytest.approx(1.0)


def test_no_source_falls_below_the_floor_or_above_the_cap():
    model = interest.learn([obs("a", 500), obs("b", 0, impressions=100000)], half_life_days=14, floor=0.5,
                           cap=2.0, weight=1)
    assert model.lift("source:b") == 0.5
    assert model.lift("source:a") == 2.0


def test_old_clicks_count_less_than_recent_ones():
    recent = interest.learn([obs("a", 100, age=0), obs("b", 10, age=0), obs("a", 10, age=0)],
                            half_life_days=7, floor=0.1, cap=10, weight=1)
    faded = interest.learn([obs("a", 100, age=60), obs("b", 10, age=0), obs("a", 10, age=0)],
                           half_life_days=7, floor=0.1, cap=10, weight=1)
    assert faded.lift("source:a") < recent.lift("source:a")


def test_weight_zero_is_todays_ranking():
    model = interest.learn([obs("a", 100), obs("b", 10)], half_life_days=14, floor=0.2, cap=5, weight=0)
    assert model.factor("a", ["news"])[0] == model.factor("b", ["news"])[0] == 1.0


# --- on the database: a small click log changes the next digest's order --------------------------

def _article(source: Source, title: str, hours_ago: float, topic: str) -> Article:
    article = Article.objects.create(source=source, story=Story.objects.create(), title=title, text=title * 20,
                                     content_hash=title,
                                     url=f"https://{source.name}.example/{title}", status=Article.Status.SUMMARIZED,
                                     published_at=timezone.now() - timedelta(hours=hours_ago))
    Summary.objects.create(article=article, content_hash=article.content_hash, engine="offline", headline=title,
                           summary=title, topics=[topic])
    return article


@pytest.fixture
def click_log():
    """Yesterday's issue: 100 recipients; the science source's story had 30 reader clicks, sport's 2."""
    newsletter = Newsletter.objects.create(name="Daily", slug="daily")
    sport = Source.objects.create(name="sport", newsletter=newsletter)
    science = Source.objects.create(name="science", newsletter=newsletter)
    yesterday = timezone.now() - timedelta(days=1)
    digest = Digest.objects.create(newsletter=newsletter, subject="yesterday", status=Digest.Status.SENT,
                                   sent_at=yesterday)
    for position, (source, clicks) in enumerate(((sport, 2), (science, 30))):
        article = _article(source, f"old-{source.name}", 30, source.name)
        item = DigestItem.objects.create(digest=digest, article=article, summary=article.summaries.get(),
                                         position=position)
        ClickCount.objects.create(item=item, url=article.url, clicks=clicks, filtered=7)
    readers = Subscriber.objects.bulk_create(Subscriber(email=f"r{i}@example.com") for i in range(100))
    Delivery.objects.bulk_create(Delivery(digest=digest, subscriber=r, status=Delivery.Status.SENT,
                                          sent_at=yesterday) for r in readers)
    # Today's candidates: the sport story is fresher, so today's ranking puts it first.
    _article(sport, "new-sport", 1, "sport")
    _article(science, "new-science", 3, "science")
    return newsletter


def test_todays_ranking_puts_the_fresher_story_first(click_log, settings):
    settings.NEWSDIGEST_INTEREST_WEIGHT = 0.0
    assert [a.title for a in schedule.candidate_articles(click_log)] == ["new-sport", "new-science"]


def test_past_click_through_moves_the_story_readers_want_up(click_log):
    assert [a.title for a in schedule.candidate_articles(click_log)] == ["new-science", "new-sport"]


def test_the_digest_keeps_why_each_story_ranked_where_it_did(click_log):
    digest = schedule.build_digest(click_log)
    ranks = {r.item.article.title: r for r in StoryRank.objects.filter(item__digest=digest)}
    assert set(ranks) == {"new-science", "new-sport"}
    science, sport = ranks["new-science"].detail, ranks["new-sport"].detail
    assert science["source_lift"] > 1 > sport["source_lift"]
    assert science["score"] == pytest.approx(science["base"] * science["interest"], rel=1e-3)
    assert sport["base"] > science["base"]  # fresher, but readers preferred science


def test_clicks_add_up_by_story_source_and_topic(click_log):
    assert interest.clicks_by(click_log, "source") == {"sport": 2, "science": 30}
    assert interest.clicks_by(click_log, "topic") == {"sport": 2, "science": 30}
    assert sorted(interest.clicks_by(click_log, "story").values()) == [2, 30]
