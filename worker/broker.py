"""Start-up of `newsdigest worker` and `newsdigest beat`: fail with one clear line when no
broker is configured or reachable, instead of Celery's retry loop and a traceback."""

import sys

import redis
from django.conf import settings

from .redact import redact_url as redact


class BrokerUnavailable(Exception):
    """No broker configured, or it does not answer: `worker`/`beat` cannot start."""


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if not url:
        raise BrokerUnavailable(
            "no broker configured: set REDIS_URL (or CELERY_BROKER_URL), e.g. redis://localhost:6379/0")
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"cannot reach Redis at REDIS_URL={redact(url)}: {exc}") from None




CELERY_DEFAULTS = {
    "worker": ["--loglevel", "info"],
    "beat": ["--loglevel", "info", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
}


def run_celery(command: str, extra: list[str]) -> int:
    """`newsdigest worker|beat [celery options]`: Celery's own CLI, with our defaults first."""
    try:
        check_broker()
    except BrokerUnavailable as exc:
        print(f"newsdigest {command}: {exc}", file=sys.stderr)
        return 2
    from worker.celery_app import app

    app.start([command, *CELERY_DEFAULTS[command], *extra])
    return 0
