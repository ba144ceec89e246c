"""GET /health (JSON; 200 when every required dependency answers, else 503) and GET /metrics
(Prometheus text exposition format 0.0.4).

Required: the database always; Redis and the broker only when configured (the embedded default runs
with neither). Both endpoints are public on purpose (load balancers and Prometheus scrape them without
a session) and expose counts only, never a name, address or secret.
"""

import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import bounces, clicks
from .broker import is_redis, redis_client
from .models import Article, Delivery, Digest, Subscriber, Summary, SuppressionEvent
from .redact import redact_text, redact_url

PROBE_TIMEOUT = 2.0


def _probe(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is reported, not raised
        return {"ok": False, "error": redact_text(f"{type(exc).__name__}: {exc}"),
                "ms": round((time.perf_counter() - started) * 1000, 1)}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker() -> None:
    url = settings.CELERY_BROKER_URL
    if is_redis(url):
        redis_client(url, PROBE_TIMEOUT).ping()
        return
    from .celery_app import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT)


def checks() -> dict[str, dict]:
    """Each dependency: ok, required, and the error when it is not ok."""
    results = {"database": {**_probe(_database), "required": True}}
    if settings.REDIS_URL:
        results["redis"] = {**_probe(lambda: redis_client(settings.REDIS_URL, PROBE_TIMEOUT).ping()), "required": True,
                            "url": redact_url(settings.REDIS_URL)}
    else:
        results["redis"] = {"ok": None, "required": False, "detail": "not configured (embedded default)"}
    if settings.CELERY_BROKER_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        results["broker"] = {**_probe(_broker), "required": True, "url": redact_url(settings.CELERY_BROKER_URL)}
    else:
        results["broker"] = {"ok": None, "required": False, "detail": "tasks run in-process (eager)"}
    return results


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    results = checks()
    healthy = all(r["ok"] for r in results.values() if r["required"])
    return JsonResponse({"status": "ok" if healthy else "unavailable", "checks": results},
                        status=200 if healthy else 503)


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    quoted = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
              for k, v in labels.items())
    return "{" + ",".join(quoted) + "}"


class Exposition:
    """Prometheus text: one HELP/TYPE header per metric, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{_labels(**labels)} {value:g}" for labels, value in samples]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _by(queryset, field: str, choices: list[str] | None = None) -> list[tuple[dict, float]]:
    counts = dict(queryset.values_list(field).annotate(n=Count("pk")).values_list(field, "n"))
    keys = choices if choices is not None else sorted(counts)
    return [({field: key}, counts.get(key, 0)) for key in keys]


def queue_depth() -> int | None:
    """Messages waiting in the Celery queue (Redis LLEN); None without a Redis broker."""
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not is_redis(url):
        return None
    try:
        return int(redis_client(url, PROBE_TIMEOUT).llen(settings.NEWSDIGEST_CELERY_QUEUE))
    except redis.RedisError:
        return None


def render_metrics() -> str:
    out = Exposition()
    out.metric("newsdigest_articles", "gauge", "Articles ingested, by status.",
               _by(Article.objects.all(), "status", Article.Status.values))
    totals = dict(Summary.objects.values_list("engine").annotate(n=Count("pk")).values_list("engine", "n"))
    flagged = dict(Summary.objects.exclude(flags=[]).values_list("engine").annotate(n=Count("pk"))
                   .values_list("engine", "n"))
    out.metric("newsdigest_summaries", "gauge", "Summaries stored, by engine and status (clean or flagged).",
               [(labels, value) for engine in sorted(totals) for labels, value in (
                   ({"engine": engine, "status": "clean"}, totals[engine] - flagged.get(engine, 0)),
                   ({"engine": engine, "status": "flagged"}, flagged.get(engine, 0)))])
    tokens = Summary.objects.values("engine").annotate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    out.metric("newsdigest_llm_tokens", "counter", "LLM tokens spent on stored summaries, by engine and kind.",
               [({"engine": t["engine"], "kind": kind}, t[key] or 0) for t in tokens.order_by("engine")
                for kind, key in (("prompt", "p"), ("completion", "c"))])
    out.metric("newsdigest_digests", "gauge", "Digests, by status.",
               _by(Digest.objects.all(), "status", Digest.Status.values))
    out.metric("newsdigest_deliveries", "gauge", "Deliveries, by status.",
               _by(Delivery.objects.all(), "status", Delivery.Status.values))
    out.metric("newsdigest_subscribers", "gauge", "Subscribers, by status.",
               _by(Subscriber.objects.all(), "status", Subscriber.Status.values))
    window = 60
    recent = Delivery.objects.filter(status=Delivery.Status.SENT,
                                     sent_at__gte=timezone.now() - timedelta(seconds=window)).count()
    out.metric("newsdigest_send_rate_per_second", "gauge", f"Messages sent per second over the last {window}s.",
               [({}, recent / window)])
    _bounce_metrics(out)
    out.metric("newsdigest_clicks", "counter",
               "Story link hits through the click redirect, by newsletter and kind (reader, or scanner: not counted).",
               clicks.metric_samples())
    out.metric("newsdigest_clicks_pending", "gauge", "Click hits buffered, not yet in the counts.",
               [({}, clicks.pending())])
    depth = queue_depth()
    if depth is not None:
        out.metric("newsdigest_queue_depth", "gauge", "Messages waiting in the Celery queue.",
                   [({"queue": settings.NEWSDIGEST_CELERY_QUEUE}, depth)])
    return out.text()


def _bounce_metrics(out: Exposition) -> None:
    """Bounce and complaint rates of the digests sent in the last week (the ones that can still pause)."""
    out.metric("newsdigest_suppression_events", "counter", "Bounces, complaints and unsubscribes recorded, by kind.",
               _by(SuppressionEvent.objects.all(), "kind", SuppressionEvent.Kind.values))
    recent = Digest.objects.filter(send_started_at__gte=timezone.now() - timedelta(days=7)).order_by("pk")
    rates = [(d, bounces.digest_rates(d)) for d in recent.values_list("pk", flat=True)]
    for name, key, help_text in (
            ("newsdigest_digest_hard_bounce_rate", "hard_bounce_rate", "Hard bounces per message sent, by digest."),
            ("newsdigest_digest_bounce_rate", "bounce_rate", "Hard and policy bounces per message sent, by digest."),
            ("newsdigest_digest_complaint_rate", "complaint_rate", "Complaints per message sent, by digest.")):
        out.metric(name, "gauge", help_text + " Digests sent in the last 7 days.",
                   [({"digest": str(pk)}, r[key]) for pk, r in rates])


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(render_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")


urlpatterns = [
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
]
