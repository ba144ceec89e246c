"""GET /metrics: the pipeline's counts in the Prometheus text exposition format 0.0.4.

Rendered by prometheus_client from a custom collector on a private registry, so each scrape reads the
database afresh and nothing of the process (the client's default registry) leaks in. Public on
purpose (Prometheus scrapes without a session) and counts only, never a name, address or secret.
Counters are exposed with the client's `_total` suffix (newsdigest_llm_tokens_total, ...).
"""

from collections.abc import Iterator
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import bounces, clicks
from ..broker import is_redis, redis_client
from ..models import Article, Delivery, Digest, Subscriber, Summary, SuppressionEvent
from .health import PROBE_TIMEOUT

Samples = list[tuple[dict[str, str], float]]
SEND_RATE_WINDOW = 60  # seconds
BOUNCE_RATE_DAYS = 7  # the digests that can still pause for their bounce rates


def _family(kind: str, name: str, help_text: str, samples: Samples) -> Metric:
    """One metric family from (labels, value) samples; every sample carries the same label names."""
    labels = list(samples[0][0]) if samples else []
    family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text, labels=labels)
    for sample_labels, value in samples:
        family.add_metric([str(sample_labels[label]) for label in labels], value)
    return family


def _by(queryset: QuerySet, field: str, choices: list[str]) -> Samples:
    """Rows per value of `field`, every choice present (0 when there are none)."""
    counts = dict(queryset.values_list(field).annotate(n=Count("pk")).values_list(field, "n"))
    return [({field: key}, counts.get(key, 0)) for key in choices]


def queue_depth() -> int | None:
    """Messages waiting in the Celery queue (Redis LLEN); None without a Redis broker."""
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not is_redis(url):
        return None
    try:
        return int(redis_client(url, PROBE_TIMEOUT).llen(settings.NEWSDIGEST_CELERY_QUEUE))
    except redis.RedisError:
        return None


def _summaries() -> Iterator[Metric]:
    totals = dict(Summary.objects.values_list("engine").annotate(n=Count("pk")).values_list("engine", "n"))
    flagged = dict(Summary.objects.exclude(flags=[]).values_list("engine").annotate(n=Count("pk"))
                   .values_list("engine", "n"))
    yield _family("gauge", "newsdigest_summaries", "Summaries stored, by engine and status (clean or flagged).",
                  [(labels, value) for engine in sorted(totals) for labels, value in (
                      ({"engine": engine, "status": "clean"}, totals[engine] - flagged.get(engine, 0)),
                      ({"engine": engine, "status": "flagged"}, flagged.get(engine, 0)))])
    tokens = Summary.objects.values("engine").annotate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    yield _family("counter", "newsdigest_llm_tokens", "LLM tokens spent on stored summaries, by engine and kind.",
                  [({"engine": t["engine"], "kind": kind}, t[key] or 0) for t in tokens.order_by("engine")
                   for kind, key in (("prompt", "p"), ("completion", "c"))])


def _bounces() -> Iterator[Metric]:
    """Bounce and complaint rates of the digests sent in the last week (the ones that can still pause)."""
    yield _family("counter", "newsdigest_suppression_events",
                  "Bounces, complaints and unsubscribes recorded, by kind.",
                  _by(SuppressionEvent.objects.all(), "kind", SuppressionEvent.Kind.values))
    recent = Digest.objects.filter(send_started_at__gte=timezone.now() - timedelta(days=BOUNCE_RATE_DAYS))
    rates = [(pk, bounces.digest_rates(pk)) for pk in recent.order_by("pk").values_list("pk", flat=True)]
    for name, key, help_text in (
            ("newsdigest_digest_hard_bounce_rate", "hard_bounce_rate", "Hard bounces per message sent, by digest."),
            ("newsdigest_digest_bounce_rate", "bounce_rate", "Hard and policy bounces per message sent, by digest."),
            ("newsdigest_digest_complaint_rate", "complaint_rate", "Complaints per message sent, by digest.")):
        yield _family("gauge", name, f"{help_text} Digests sent in the last {BOUNCE_RATE_DAYS} days.",
                      [({"digest": str(pk)}, r[key]) for pk, r in rates])


class PipelineCollector(Collector):
    """Reads the counts at each scrape, in the order the endpoint has always listed them."""

    def collect(self) -> Iterator[Metric]:
        yield _family("gauge", "newsdigest_articles", "Articles ingested, by status.",
                      _by(Article.objects.all(), "status", Article.Status.values))
        yield from _summaries()
        yield _family("gauge", "newsdigest_digests", "Digests, by status.",
                      _by(Digest.objects.all(), "status", Digest.Status.values))
        yield _family("gauge", "newsdigest_deliveries", "Deliveries, by status.",
                      _by(Delivery.objects.all(), "status", Delivery.Status.values))
        yield _family("gauge", "newsdigest_subscribers", "Subscribers, by status.",
                      _by(Subscriber.objects.all(), "status", Subscriber.Status.values))
        since = timezone.now() - timedelta(seconds=SEND_RATE_WINDOW)
        recent = Delivery.objects.filter(status=Delivery.Status.SENT, sent_at__gte=since).count()
        yield _family("gauge", "newsdigest_send_rate_per_second",
                      f"Messages sent per second over the last {SEND_RATE_WINDOW}s.", [({}, recent / SEND_RATE_WINDOW)])
        yield from _bounces()
        yield _family("counter", "newsdigest_clicks", "Story link hits through the click redirect, by newsletter "
                      "and kind (reader, or scanner: not counted).", clicks.metric_samples())
        yield _family("gauge", "newsdigest_clicks_pending", "Click hits buffered, not yet in the counts.",
                      [({}, clicks.pending())])
        depth = queue_depth()
        if depth is not None:
            yield _family("gauge", "newsdigest_queue_depth", "Messages waiting in the Celery queue.",
                          [({"queue": settings.NEWSDIGEST_CELERY_QUEUE}, depth)])


# Private: the client's default registry would add this process's own metrics (GC, platform).
registry = CollectorRegistry()
registry.register(PipelineCollector())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
