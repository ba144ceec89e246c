"""The broker and Redis URLs, and the start-up of `newsdigest worker` and `newsdigest beat`.

The one place that decides which URL is a Redis one and which Redis holds what:
- the broker is CELERY_BROKER_URL (REDIS_URL unless overridden); it may be Redis or e.g. RabbitMQ;
- shared state (rate limits, LLM mode memory) lives in REDIS_URL, else in a Redis broker;
- the click buffer uses REDIS_URL only (worker/clicks.py).
`worker`/`beat` fail with one clear line when no broker is configured or reachable, instead of
Celery's retry loop and a traceback."""

import sys

import redis
from django.conf import settings

from .redact import redact_url as redact

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class BrokerUnavailable(Exception):
    """No broker configured, or it does not answer: `worker`/`beat` cannot start."""


def is_redis(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def broker_setting() -> str:
    """The setting that names the broker, for messages: REDIS_URL unless CELERY_BROKER_URL overrides it."""
    return "REDIS_URL" if settings.CELERY_BROKER_URL == settings.REDIS_URL else "CELERY_BROKER_URL"


def shared_state_url() -> str | None:
    """The Redis holding state shared by all processes: REDIS_URL, else a Redis broker; None without one."""
    url = settings.REDIS_URL or settings.CELERY_BROKER_URL
    return url if is_redis(url) else None


def redis_client(url: str, timeout: float) -> redis.Redis:
    """A client for `url` whose connect and each command give up after `timeout` seconds."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def check_broker(timeout: float = 3.0) -> None:
    url = settings.CELERY_BROKER_URL
    if not url:
        raise BrokerUnavailable(
            "no broker configured: set REDIS_URL (or CELERY_BROKER_URL), e.g. redis://localhost:6379/0")
    if is_redis(url):
        setting = broker_setting()
        try:
            redis_client(url, timeout).ping()
        except redis.RedisError as exc:
            reason = str(exc).rstrip(".")
            raise BrokerUnavailable(f"cannot reach Redis at {setting}={redact(url)} ({reason}); "
                                    f"start Redis or fix {setting}") from None


def waiting_messages(timeout: float = 2.0) -> int | None:
    """Messages waiting in the task queue for a worker (those a worker has taken, even unacked, are not
    counted), on Redis and RabbitMQ alike; None when tasks run inline or the broker does not answer."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    from kombu.exceptions import ChannelError, OperationalError

    from .celery_app import app

    try:
        with app.connection_for_read(url=settings.CELERY_BROKER_URL, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            try:
                return conn.default_channel.queue_declare(
                    queue=settings.NEWSDIGEST_CELERY_QUEUE, passive=True).message_count
            except ChannelError:  # no such queue: on Redis, an empty one (its list is deleted when empty)
                return 0
    except (OperationalError, redis.RedisError, OSError):
        return None


def require_broker() -> None:
    """Before a command queues work: one quick ping instead of Celery's 20 s of connection retries
    and a traceback. Nothing to check when tasks run inline (no broker configured)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        check_broker(timeout=2.0)




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
