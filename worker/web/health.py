"""GET /health: JSON, 200 when every required dependency answers, else 503.

Required: the database always; Redis and the broker only when configured (the embedded default runs
with neither). Public on purpose (load balancers probe it without a session); it shows whether each
dependency answers, with URLs redacted, never a name, address or secret.
"""

import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from ..broker import is_redis, redis_client
from ..redact import redact_text, redact_url

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
    from ..celery_app import app

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
