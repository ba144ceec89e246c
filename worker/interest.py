"""Reader interest: past click-through by source and topic, as a factor in story ranking.

For every story of a newsletter's sent digests we know how many recipients got it and how many
reader clicks it had (worker/clicks.py, scanners filtered). A story lower in the email is seen by
fewer readers, so its impressions are weighted by an examination probability 1/log2(position + 2).
Older evidence counts less (half-life NEWSDIGEST_INTEREST_HALF_LIFE_DAYS).

Per source and per topic the click-through rate is smoothed towards the newsletter's overall rate
(as if PRIOR_IMPRESSIONS impressions at the overall rate had been seen), so a new source starts at
the average, never at zero; the resulting lift (rate / overall rate) is clamped to [FLOOR, CAP], so
no source is starved and none takes over. A story's factor is the geometric mean of its source's
lift and its topics' mean lift, raised to NEWSDIGEST_INTEREST_WEIGHT (0 = today's ranking).
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum

from .clicks import recipients
from .models import Article, ClickCount, Digest, DigestItem, Newsletter, StoryRank, Summary

# Impressions at the overall rate a source or topic is assumed to have before any evidence.
PRIOR_IMPRESSIONS = 200.0


def examination(position: int) -> float:
    """How likely a reader is to see the story at this 0-based position (the DCG discount)."""
    return 1.0 / math.log2(position + 2)


@dataclass(frozen=True)
class Observation:
    """One mailed story: where it came from, what it was about, how it did."""

    source: str
    topics: tuple[str, ...]
    age_days: float
    impressions: float
    clicks: float


@dataclass
class InterestModel:
    evidence: dict[str, list[float]] = field(default_factory=dict)  # key -> [clicks, impressions], decayed
    overall: float = 0.0
    floor: float = 0.5
    cap: float = 2.0
    weight: float = 1.0

    def lift(self, key: str) -> float:
        if self.overall <= 0:
            return 1.0
        clicks, impressions = self.evidence.get(key, (0.0, 0.0))
        rate = (clicks + PRIOR_IMPRESSIONS * self.overall) / (impressions + PRIOR_IMPRESSIONS)
        return min(self.cap, max(self.floor, rate / self.overall))

    def factor(self, source: str, topics: Iterable[str]) -> tuple[float, dict]:
        """The ranking factor for a story, and the numbers behind it (shown on the desk)."""
        topics = [t for t in topics if t]
        source_lift = self.lift(f"source:{source}")
        topic_lifts = {t: round(self.lift(f"topic:{t}"), 3) for t in topics}
        topic_lift = sum(topic_lifts.values()) / len(topic_lifts) if topic_lifts else 1.0
        value = min(self.cap, max(self.floor, math.sqrt(source_lift * topic_lift))) ** self.weight
        clicks, impressions = self.evidence.get(f"source:{source}", (0.0, 0.0))
        return value, {"interest": round(value, 3), "source_lift": round(source_lift, 3),
                       "source_clicks": round(clicks, 1), "source_impressions": round(impressions, 1),
                       "topic_lifts": topic_lifts, "overall_ctr": round(self.overall, 4)}


def learn(observations: Iterable[Observation], *, half_life_days: float | None = None, floor: float | None = None,
          cap: float | None = None, weight: float | None = None) -> InterestModel:
    half_life = half_life_days if half_life_days is not None else settings.NEWSDIGEST_INTEREST_HALF_LIFE_DAYS
    model = InterestModel(
        floor=settings.NEWSDIGEST_INTEREST_FLOOR if floor is None else floor,
        cap=settings.NEWSDIGEST_INTEREST_CAP if cap is None else cap,
        weight=settings.NEWSDIGEST_INTEREST_WEIGHT if weight is None else weight)
    evidence: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    total = [0.0, 0.0]
    for obs in observations:
        decay = 0.5 ** (max(obs.age_days, 0.0) / half_life)
        clicks, impressions = obs.clicks * decay, obs.impressions * decay
        for key in [f"source:{obs.source}", *{f"topic:{t}" for t in obs.topics if t}]:
            evidence[key][0] += clicks
            evidence[key][1] += impressions
        total[0] += clicks
        total[1] += impressions
    model.evidence = dict(evidence)
    model.overall = total[0] / total[1] if total[1] else 0.0
    return model


def _topics(value) -> tuple[str, ...]:
    return tuple(sorted({str(t).strip().casefold() for t in value or [] if str(t).strip()}))


def observations(newsletter: Newsletter, now: datetime) -> list[Observation]:
    """The newsletter's sent stories within eight half-lives, with their impressions and reader clicks."""
    horizon = now - timedelta(days=settings.NEWSDIGEST_INTEREST_HALF_LIFE_DAYS * 8)
    items = (DigestItem.objects.filter(digest__newsletter=newsletter, digest__status=Digest.Status.SENT,
                                       digest__sent_at__gte=horizon)
             .values("pk", "digest_id", "position", "digest__sent_at", "article__source_id", "summary__topics")
             .annotate(clicks=Sum("click_counts__clicks")))
    rows = list(items)
    sent = recipients(sorted({row["digest_id"] for row in rows}))
    return [Observation(source=str(row["article__source_id"] or "none"), topics=_topics(row["summary__topics"]),
                        age_days=(now - row["digest__sent_at"]).total_seconds() / 86400,
                        impressions=sent.get(row["digest_id"], 0) * examination(row["position"]),
                        clicks=row["clicks"] or 0)
            for row in rows]


def explain(newsletter: Newsletter, articles: list[Article], base: Callable[[Article], float],
            now: datetime) -> dict[int, dict]:
    """Per article: its score (today's rank x reader interest) and why, for sorting and for the desk."""
    model = learn(observations(newsletter, now))
    summaries = dict(Summary.objects.filter(article__in=articles).order_by("created_at")
                     .values_list("article_id", "topics"))
    explained = {}
    for article in articles:
        factor, detail = model.factor(str(article.source_id or "none"), _topics(summaries.get(article.pk)))
        base_score = base(article)
        explained[article.pk] = {
            "score": base_score * factor, "base": round(base_score, 4), **detail,
            "source": article.source.name if article.source else "", "source_weight":
                article.source.weight if article.source else 1.0,
            "cluster_size": getattr(article, "cluster_size", 1),
            "published_at": (article.published_at or article.created_at).isoformat()}
    return explained


def keep_explanations(digest: Digest, articles: list[Article]) -> None:
    """Store each story's ranking detail with its digest item (the desk's "why here")."""
    items = dict(digest.items.values_list("article_id", "pk"))
    StoryRank.objects.bulk_create(
        StoryRank(item_id=items[a.pk], score=a.rank_detail["score"], detail=a.rank_detail)
        for a in articles if a.pk in items and hasattr(a, "rank_detail"))


def clicks_by(newsletter: Newsletter, field_name: str) -> dict[str, int]:
    """Reader clicks aggregated by story, source or topic (field: "story", "source", "topic")."""
    counts = ClickCount.objects.filter(item__digest__newsletter=newsletter)
    if field_name == "topic":
        totals: dict[str, int] = defaultdict(int)
        for topics, clicks in counts.values_list("item__summary__topics", "clicks"):
            for topic in _topics(topics):
                totals[topic] += clicks
        return dict(totals)
    path = {"story": "item__article__story_id", "source": "item__article__source__name"}[field_name]
    return {str(key): total for key, total in counts.values_list(path).annotate(n=Sum("clicks")).values_list(path, "n")}
