"""Every setting comes from the environment, here and only here.

With nothing set, Newsdigest runs embedded: SQLite under ./var, Celery tasks run
eagerly in-process, the offline summarizer, and mail written to ./var/outbox.
Production sets DATABASE_URL, REDIS_URL, OPENAI_API_KEY and EMAIL_URL (or anymail).
"""

import os
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
import dj_email_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("NEWSDIGEST_VAR_DIR", "var")).resolve()
PROMPTS_DIR = BASE_DIR / "prompts"


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# The embedded default needs a key that survives restarts (unsubscribe links are signed
# with it), so it is generated once and kept under var/.
def _secret_key() -> str:
    if key := os.environ.get("SECRET_KEY"):
        return key
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    from django.core.management.utils import get_random_secret_key

    VAR_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = get_random_secret_key()
    # Written whole to an owner-only temporary file (mkstemp: 0600, never world-readable), then linked
    # into place: processes starting together (a worker pool, the tests' two workers) either win the
    # link or read the winner's complete key; none sees a half-written file or fails on FileExistsError.
    fd, tmp = tempfile.mkstemp(dir=VAR_DIR, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        os.link(tmp, key_file)
    except FileExistsError:
        return key_file.read_text().strip()
    finally:
        os.unlink(tmp)
    return key


# Public keys (compose's old default, docs, Django's startproject) let anyone forge ops API tokens,
# preference and unsubscribe links: refused outside DEBUG, as is any key too short to be random.
KNOWN_PLACEHOLDER_KEYS = {"change-me-in-production", "changeme", "change-me", "secret", "secret-key",
                          "your-secret-key", "dev", "development", "insecure", "test", "django-insecure"}
SECRET_KEY_MIN_LENGTH = 50


def check_secret_key(key: str, debug: bool) -> None:
    from django.core.exceptions import ImproperlyConfigured

    if debug:
        return
    if key.strip().lower() in KNOWN_PLACEHOLDER_KEYS or key.startswith("django-insecure-"):
        raise ImproperlyConfigured("SECRET_KEY is a published placeholder; set a random one, e.g. "
                                   "python -c 'import secrets; print(secrets.token_urlsafe(50))'")
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < 5:
        raise ImproperlyConfigured(f"SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} random characters "
                                   f"(it has {len(key)}); e.g. python -c 'import secrets; "
                                   "print(secrets.token_urlsafe(50))'")


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG")
check_secret_key(SECRET_KEY, DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# --- HTTPS (production) ----------------------------------------------------------
# NEWSDIGEST_HTTPS=1 is the production switch: cookies only over TLS, plain HTTP redirected, HSTS for a
# year. Each is overridable by Django's own name. Behind a TLS-terminating proxy also set
# SECURE_PROXY_SSL_HEADER to the header it sets (e.g. HTTP_X_FORWARDED_PROTO), and only then: a client
# could send that header itself otherwise.
HTTPS = env_bool("NEWSDIGEST_HTTPS")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# Load balancers and Prometheus probe these over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
if proxy_ssl_header := os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip():
    SECURE_PROXY_SSL_HEADER = (proxy_ssl_header, "https")
# Absolute base of links in emails (unsubscribe, view in browser).
SITE_URL = os.environ.get("NEWSDIGEST_SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "anymail",
    "axes",
    "worker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS/JS) under gunicorn and runserver alike, DEBUG or not.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "worker.web.security.RefuseNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: answers 429 to a locked-out login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "worker.web.urls"
WSGI_APPLICATION = "worker.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'newsdigest.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
except ValueError:
    # dj_database_url's own message lists every scheme it knows; name the fix instead (and never the password).
    _scheme = DATABASE_URL.partition("://")[0] if "://" in DATABASE_URL else ""
    raise ImproperlyConfigured(
        f"DATABASE_URL is not a database URL ({f'unknown scheme {_scheme!r}' if _scheme else 'no scheme://'}); use "
        f"postgres://USER:PASSWORD@HOST:5432/NAME or sqlite:////absolute/path.sqlite3") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes share one SQLite file in the embedded/test setup: WAL
    # lets readers run beside the writer and the busy timeout queues writers instead
    # of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if test_name := os.environ.get("NEWSDIGEST_TEST_DB"):
        DATABASES["default"]["TEST"] = {"NAME": test_name}
    # Subscriber addresses live in this file: owner-only. SQLite gives its -wal/-shm files the main
    # file's mode, so creating the file 0600 before Django opens it covers all three.
    _sqlite_file = Path(DATABASES["default"]["NAME"])
    if str(_sqlite_file) != ":memory:" and not _sqlite_file.exists():
        _sqlite_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(_sqlite_file, os.O_WRONLY | os.O_CREAT, 0o600))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("NEWSDIGEST_STATIC_ROOT", VAR_DIR / "static"))
# --- static files (i12): WhiteNoise serves STATIC_ROOT (filled by `newsdigest collectstatic`; the image
# does it at build time) and, so a fresh checkout needs no collect step, the apps' own static folders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Before the first collectstatic STATIC_ROOT does not exist; the finders serve everything meanwhile.
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)
# Password guessing on the desk and admin logins (django-axes): after NEWSDIGEST_LOGIN_FAILURE_LIMIT
# failures from one client network (an IPv6 /64) or for one username, logins are refused (429) for
# NEWSDIGEST_LOGIN_LOCKOUT_MINUTES; a success resets the count. The client is found as for sign-ups
# (NEWSDIGEST_TRUSTED_PROXY_COUNT).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("NEWSDIGEST_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("NEWSDIGEST_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "worker.web.security.client_ip"
LOGIN_URL = "/desk/login/"
LOGIN_REDIRECT_URL = "/desk/start/"  # each role lands on its own start page (desk.start)

# --- Celery ---------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL) or None
# No broker configured means the embedded default: the same task code runs inline.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("NEWSDIGEST_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
# Redis redelivers an unacked message after visibility_timeout; it must exceed the
# longest task, and Celery reads it from both places.
CELERY_VISIBILITY_TIMEOUT = env_int("NEWSDIGEST_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- LLM ------------------------------------------------------------------
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL") or None
NEWSDIGEST_LLM_MODEL = os.environ.get("NEWSDIGEST_LLM_MODEL", "gpt-4o-mini")
NEWSDIGEST_LLM_TIMEOUT = env_float("NEWSDIGEST_LLM_TIMEOUT", 60.0)
NEWSDIGEST_LLM_MAX_RETRIES = env_int("NEWSDIGEST_LLM_MAX_RETRIES", 3)
NEWSDIGEST_LLM_MAX_INPUT_TOKENS = env_int("NEWSDIGEST_LLM_MAX_INPUT_TOKENS", 6000)
NEWSDIGEST_LLM_MAX_OUTPUT_TOKENS = env_int("NEWSDIGEST_LLM_MAX_OUTPUT_TOKENS", 1200)
NEWSDIGEST_LLM_RPM = env_int("NEWSDIGEST_LLM_RPM", 0)  # 0 = unlimited
NEWSDIGEST_LLM_TPM = env_int("NEWSDIGEST_LLM_TPM", 0)
# summarize/llm_client.py owns retries (the SDK's are off): jittered exponential backoff capped here, and a
# server's Retry-After honoured up to NEWSDIGEST_LLM_MAX_RETRY_AFTER (longer: give up for now).
NEWSDIGEST_LLM_BACKOFF_BASE = env_float("NEWSDIGEST_LLM_BACKOFF_BASE", 1.0)
NEWSDIGEST_LLM_BACKOFF_MAX = env_float("NEWSDIGEST_LLM_BACKOFF_MAX", 20.0)
NEWSDIGEST_LLM_MAX_RETRY_AFTER = env_float("NEWSDIGEST_LLM_MAX_RETRY_AFTER", 30.0)
# rapidfuzz partial_ratio an evidence quote must reach against the article (0-100).
NEWSDIGEST_GROUNDING_THRESHOLD = env_float("NEWSDIGEST_GROUNDING_THRESHOLD", 92.0)
# USD per 1M tokens (input, output); local servers are not listed and cost nothing.
NEWSDIGEST_LLM_PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}
if "NEWSDIGEST_LLM_PRICE_IN" in os.environ or "NEWSDIGEST_LLM_PRICE_OUT" in os.environ:
    NEWSDIGEST_LLM_PRICES[NEWSDIGEST_LLM_MODEL] = (
        env_float("NEWSDIGEST_LLM_PRICE_IN", 0.0), env_float("NEWSDIGEST_LLM_PRICE_OUT", 0.0))
# --- LLM server capabilities (issue 17) ---------------------------------------
# How the answer's JSON shape is asked for: "" = detect per (server, model) (json_schema, then
# json_object with the schema attached, then plain json_object, then the schema in the prompt
# alone, stepping down when the server refuses one); json_schema|json_object_schema|json_object|
# prompt forces one and never steps down.
NEWSDIGEST_LLM_RESPONSE_FORMAT = os.environ.get("NEWSDIGEST_LLM_RESPONSE_FORMAT", "").strip().lower()
if NEWSDIGEST_LLM_RESPONSE_FORMAT not in ("", "json_schema", "json_object_schema", "json_object", "prompt"):
    raise ImproperlyConfigured("NEWSDIGEST_LLM_RESPONSE_FORMAT must be json_schema, json_object_schema, "
                               "json_object or prompt (or empty to detect)")
# Seconds one (article, engine, model, prompt) stays locked while a worker summarizes it, so two
# workers never pay for the same summary at once (a crashed worker's lock expires by itself).
NEWSDIGEST_SUMMARIZE_LOCK_SECONDS = env_int("NEWSDIGEST_SUMMARIZE_LOCK_SECONDS", 300)
NEWSDIGEST_SUMMARY_ENGINE = os.environ.get("NEWSDIGEST_SUMMARY_ENGINE") or (
    "openai" if OPENAI_API_KEY else "offline"
)

# --- Mail -----------------------------------------------------------------
OUTBOX_DIR = Path(os.environ.get("NEWSDIGEST_OUTBOX_DIR", VAR_DIR / "outbox")).resolve()
if email_url := os.environ.get("EMAIL_URL"):
    _email = dj_email_url.parse(email_url)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"]
    EMAIL_PORT = _email["EMAIL_PORT"]
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
    EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
    EMAIL_TIMEOUT = _email.get("EMAIL_TIMEOUT") or env_int("EMAIL_TIMEOUT", 30)
else:
    EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "worker.mail.OutboxBackend")
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
EMAIL_USE_LOCALTIME = True
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "digest@newsdigest.localhost")
# Domain of Message-IDs; defaults to the sender's domain.
NEWSDIGEST_MESSAGE_ID_DOMAIN = os.environ.get(
    "NEWSDIGEST_MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rpartition("@")[2]
)
NEWSDIGEST_UNSUBSCRIBE_MAILTO = os.environ.get(
    "NEWSDIGEST_UNSUBSCRIBE_MAILTO", f"unsubscribe@{NEWSDIGEST_MESSAGE_ID_DOMAIN}"
)
NEWSDIGEST_SEND_BATCH_SIZE = env_int("NEWSDIGEST_SEND_BATCH_SIZE", 100)
NEWSDIGEST_DELIVERY_LEASE_SECONDS = env_int("NEWSDIGEST_DELIVERY_LEASE_SECONDS", 300)
NEWSDIGEST_DELIVERY_MAX_ATTEMPTS = env_int("NEWSDIGEST_DELIVERY_MAX_ATTEMPTS", 5)
# --- Delivery ---------------------------------------------------------------
# A queued row whose Celery message has not led to a claim within this long is re-nudged by the sweeper.
NEWSDIGEST_DELIVERY_NUDGE_SECONDS = env_int("NEWSDIGEST_DELIVERY_NUDGE_SECONDS", 600)
NEWSDIGEST_DELIVERY_SWEEP_SECONDS = env_int("NEWSDIGEST_DELIVERY_SWEEP_SECONDS", 60)
# At most this many rows re-nudged per sweep (never-nudged rows, then the oldest lapses), so one sweep's
# work stays bounded whatever the backlog. With work waiting in the broker the rest waits for the next sweeps
# (LIMIT / SWEEP_SECONDS rows a second, 33/s by default); with the broker short of work (it lost its queue) the
# next sweep follows at once (deliver.sweep_and_publish). Each row is one UPDATE of a row and its five index
# entries (15-60 us at 1M rows, bench/fanout/rows.py). 20 batches of the default size; at most 32,766 on SQLite.
NEWSDIGEST_DELIVERY_NUDGE_LIMIT = env_int("NEWSDIGEST_DELIVERY_NUDGE_LIMIT", 2000)
# 4xx / dropped connection: retried after base * 2^(attempt-1) seconds (jittered), at most max.
NEWSDIGEST_DELIVERY_BACKOFF_BASE = env_float("NEWSDIGEST_DELIVERY_BACKOFF_BASE", 2.0)
NEWSDIGEST_DELIVERY_BACKOFF_MAX = env_float("NEWSDIGEST_DELIVERY_BACKOFF_MAX", 300.0)
# Message-IDs written (durably) per commit ahead of sending; a crash flags at most this many rows. Each group
# costs a WAL flush (an fsync, 1-4 ms on the development machine) and a rate-limit round trip. One worker,
# 10k subscribers, quiet machine (bench/fanout/run.py): 20 -> 311 msgs/s, 50 -> 362, 100 -> 370 (the bare
# smtplib loop ~360-400). With 50, a crash can flag up to 49 rows that were not sent; real doubles are never
# fewer flagged, and every flagged row goes out again with the same Message-ID.
NEWSDIGEST_DELIVERY_INFLIGHT_GROUP = env_int("NEWSDIGEST_DELIVERY_INFLIGHT_GROUP", 50)
# PostgreSQL: per-message `sent` marks committed without waiting for the WAL flush (in-flight marks
# stay durable; see deliver.sending._relaxed_commits). 0 makes every commit wait.
NEWSDIGEST_DELIVERY_RELAXED_COMMIT = env_bool("NEWSDIGEST_DELIVERY_RELAXED_COMMIT", True)
# Consecutive send errors that pause a digest (0 = never).
NEWSDIGEST_DELIVERY_PAUSE_AFTER_ERRORS = env_int("NEWSDIGEST_DELIVERY_PAUSE_AFTER_ERRORS", 50)
# Messages per second across all workers, and per recipient domain (0 = unlimited).
NEWSDIGEST_SEND_RATE = env_float("NEWSDIGEST_SEND_RATE", 0)
NEWSDIGEST_SEND_RATE_PER_DOMAIN = env_float("NEWSDIGEST_SEND_RATE_PER_DOMAIN", 0)
# Subscribers: confirmation links expire; sign-ups per client IP per hour; soft bounces before suppression.
NEWSDIGEST_CONFIRM_MAX_AGE = env_int("NEWSDIGEST_CONFIRM_MAX_AGE", 3 * 24 * 3600)
NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR = env_int("NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR", 20)
# Issue 13: per IPv6 network of this prefix length (an IPv6 client has a whole /64); confirmation
# mails per address per day, whoever asks; proxies in front whose X-Forwarded-For entries are believed.
NEWSDIGEST_SUBSCRIBE_IPV6_PREFIX = env_int("NEWSDIGEST_SUBSCRIBE_IPV6_PREFIX", 64)
NEWSDIGEST_CONFIRMATIONS_PER_ADDRESS_PER_DAY = env_int("NEWSDIGEST_CONFIRMATIONS_PER_ADDRESS_PER_DAY", 3)
NEWSDIGEST_TRUSTED_PROXY_COUNT = env_int("NEWSDIGEST_TRUSTED_PROXY_COUNT", 0)
# Ops API tokens (`newsdigest ops token USER`) expire after this many days.
NEWSDIGEST_OPS_TOKEN_DAYS = env_int("NEWSDIGEST_OPS_TOKEN_DAYS", 30)
NEWSDIGEST_SOFT_BOUNCE_LIMIT = env_int("NEWSDIGEST_SOFT_BOUNCE_LIMIT", 3)
# --- Bounces and complaints (worker/bounces.py, worker/bounce_reports.py) ----------------------------
# Soft bounces (full mailbox, greylisting, ...) suppress only when NEWSDIGEST_SOFT_BOUNCE_LIMIT of them
# fall within this many days; hard bounces and complaints suppress at once; policy bounces never do.
NEWSDIGEST_SOFT_BOUNCE_WINDOW_DAYS = env_int("NEWSDIGEST_SOFT_BOUNCE_WINDOW_DAYS", 14)
# VERP: digests go out with envelope sender <local>+<signed delivery token>@<domain> of this address,
# so a bounce names its delivery even when the server rewrites the recipient. Empty = From address, no VERP.
NEWSDIGEST_BOUNCE_ADDRESS = os.environ.get("NEWSDIGEST_BOUNCE_ADDRESS", "")
# Larger inbound mail is refused unread (real bounces are a few KB, a returned digest a few hundred).
NEWSDIGEST_INBOUND_MAX_BYTES = env_int("NEWSDIGEST_INBOUND_MAX_BYTES", 1024 * 1024)
# A sending digest auto-pauses when, once this many of its messages went out, its hard+policy bounce
# rate or its complaint rate passes the threshold (Gmail/Yahoo bulk-sender rules: complaints under
# 0.3%; ESPs review senders above 5% bounces). 0 turns a threshold off.
NEWSDIGEST_PAUSE_MIN_SENT = env_int("NEWSDIGEST_PAUSE_MIN_SENT", 100)
NEWSDIGEST_PAUSE_BOUNCE_RATE = env_float("NEWSDIGEST_PAUSE_BOUNCE_RATE", 0.05)
NEWSDIGEST_PAUSE_COMPLAINT_RATE = env_float("NEWSDIGEST_PAUSE_COMPLAINT_RATE", 0.003)
# --- Subscriber import (i18) -------------------------------------------------
# `subscribers import` refuses larger files up front (a regular file) or as soon as it gets there (stdin),
# having written nothing; one CSV line may not exceed the line cap (a file without line breaks is refused
# after that many bytes, not read whole).
NEWSDIGEST_IMPORT_MAX_BYTES = env_int("NEWSDIGEST_IMPORT_MAX_BYTES", 32 * 1024 * 1024)
NEWSDIGEST_IMPORT_MAX_ROWS = env_int("NEWSDIGEST_IMPORT_MAX_ROWS", 500_000)
NEWSDIGEST_IMPORT_MAX_LINE_BYTES = env_int("NEWSDIGEST_IMPORT_MAX_LINE_BYTES", 16 * 1024)
CELERY_BEAT_SCHEDULE = {
    "newsdigest-sweep-deliveries": {
        "task": "worker.tasks.sweep_deliveries",
        "schedule": float(NEWSDIGEST_DELIVERY_SWEEP_SECONDS),
    },
    # Per-newsletter ticks are PeriodicTask rows written by schedule.sync_schedule.
    "newsdigest-approval-deadlines": {"task": "worker.tasks.enforce_approval_deadlines", "schedule": 60.0},
}
if max(NEWSDIGEST_DELIVERY_BACKOFF_MAX, CELERY_TASK_TIME_LIMIT) >= CELERY_VISIBILITY_TIMEOUT:
    # Redis would hand an unacked (or ETA) message to a second worker while the first still runs it.
    raise ValueError("NEWSDIGEST_VISIBILITY_TIMEOUT must exceed NEWSDIGEST_TASK_TIME_LIMIT and "
                     "NEWSDIGEST_DELIVERY_BACKOFF_MAX")
# --- Reader signals (issue 20, worker/clicks.py, worker/interest.py) -------
# Buffered clicks move from Redis (or the PendingClick table) into the counts this often.
NEWSDIGEST_CLICK_FLUSH_SECONDS = env_int("NEWSDIGEST_CLICK_FLUSH_SECONDS", 30)
# A hit this soon after its message was delivered is a link scanner, not a reader.
NEWSDIGEST_CLICK_SCANNER_SECONDS = env_int("NEWSDIGEST_CLICK_SCANNER_SECONDS", 15)
# One client opening this many different links of a digest within BURST_SECONDS is a scanner.
NEWSDIGEST_CLICK_BURST_LINKS = env_int("NEWSDIGEST_CLICK_BURST_LINKS", 3)
NEWSDIGEST_CLICK_BURST_SECONDS = env_float("NEWSDIGEST_CLICK_BURST_SECONDS", 2.0)
# Ranking: past click-through loses half its weight every HALF_LIFE_DAYS; the learned factor stays
# within [FLOOR, CAP] so a new or unlucky source is never starved; WEIGHT 0 turns the term off.
NEWSDIGEST_INTEREST_HALF_LIFE_DAYS = env_float("NEWSDIGEST_INTEREST_HALF_LIFE_DAYS", 14.0)
NEWSDIGEST_INTEREST_FLOOR = env_float("NEWSDIGEST_INTEREST_FLOOR", 0.5)
NEWSDIGEST_INTEREST_CAP = env_float("NEWSDIGEST_INTEREST_CAP", 2.0)
NEWSDIGEST_INTEREST_WEIGHT = env_float("NEWSDIGEST_INTEREST_WEIGHT", 1.0)
CELERY_BEAT_SCHEDULE["newsdigest-flush-clicks"] = {
    "task": "worker.tasks.flush_clicks", "schedule": float(NEWSDIGEST_CLICK_FLUSH_SECONDS)}
# The Celery queue whose length /metrics reports as the queue depth.
NEWSDIGEST_CELERY_QUEUE = os.environ.get("NEWSDIGEST_CELERY_QUEUE", "celery")
# i18: ...and the queue tasks go to, so deployments (and test runs) sharing one broker keep apart. With
# CELERY_BROKER_URL=amqp://... (RabbitMQ) the same acks-late guarantees hold: a killed worker's unacked
# messages are redelivered when its channel closes; Redis (REDIS_URL) still holds limits and locks.
CELERY_TASK_DEFAULT_QUEUE = NEWSDIGEST_CELERY_QUEUE
# --- Rendering/DKIM ---------------------------------------------------------
# DKIM signing is on when a selector, a domain and a key (file or inline PEM) are all set.
NEWSDIGEST_DKIM_SELECTOR = os.environ.get("NEWSDIGEST_DKIM_SELECTOR", "")
NEWSDIGEST_DKIM_DOMAIN = os.environ.get("NEWSDIGEST_DKIM_DOMAIN", "")
NEWSDIGEST_DKIM_KEY_FILE = os.environ.get("NEWSDIGEST_DKIM_KEY_FILE", "")
NEWSDIGEST_DKIM_PRIVATE_KEY = os.environ.get("NEWSDIGEST_DKIM_PRIVATE_KEY", "")
# Headless browser for `newsdigest digest screenshot`.
NEWSDIGEST_CHROMIUM = os.environ.get("NEWSDIGEST_CHROMIUM", "/usr/bin/chromium")
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}
# --- Security (issue 13) ------------------------------------------------------
# The one ESP whose bounce/complaint webhook is mounted (worker/web/webhooks.py); by default the ESP of an
# anymail EMAIL_BACKEND, e.g. anymail.backends.postmark.EmailBackend -> "postmark". "" = no webhook.
NEWSDIGEST_TRACKING_ESP = os.environ.get(
    "NEWSDIGEST_TRACKING_ESP",
    EMAIL_BACKEND.split(".")[2] if EMAIL_BACKEND.startswith("anymail.backends.") else "").strip().lower()

# --- Ingestion -------------------------------------------------------------
NEWSDIGEST_NEAR_DUP_THRESHOLD = env_float("NEWSDIGEST_NEAR_DUP_THRESHOLD", 0.7)
NEWSDIGEST_FETCH_TIMEOUT = env_float("NEWSDIGEST_FETCH_TIMEOUT", 15.0)
NEWSDIGEST_FETCH_MAX_BYTES = env_int("NEWSDIGEST_FETCH_MAX_BYTES", 5 * 1024 * 1024)
# Hosts/networks the SSRF guard lets through (tests name their local server here).
NEWSDIGEST_FETCH_ALLOW = env_list("NEWSDIGEST_FETCH_ALLOW")
# Longer cleaned texts are refused (an LLM summary of a book helps nobody).
NEWSDIGEST_MAX_ARTICLE_CHARS = env_int("NEWSDIGEST_MAX_ARTICLE_CHARS", 1_000_000)
# Entries read per poll; the rest of a runaway feed is refused with one rejection row.
NEWSDIGEST_FEED_MAX_ENTRIES = env_int("NEWSDIGEST_FEED_MAX_ENTRIES", 500)
# Feed entries with less text than this are completed by fetching their page.
NEWSDIGEST_FEED_FULLTEXT_MIN_CHARS = env_int("NEWSDIGEST_FEED_FULLTEXT_MIN_CHARS", 600)
# A failing feed waits poll_interval * 2**errors, at most this long.
NEWSDIGEST_FEED_BACKOFF_MAX_MINUTES = env_int("NEWSDIGEST_FEED_BACKOFF_MAX_MINUTES", 24 * 60)
# How often celery beat looks for feeds that are due.
NEWSDIGEST_FEED_POLL_EVERY_MINUTES = env_int("NEWSDIGEST_FEED_POLL_EVERY_MINUTES", 5)
NEWSDIGEST_API_MAX_BODY_BYTES = env_int("NEWSDIGEST_API_MAX_BODY_BYTES", 2 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # No credentials in logs: every URL in a line is redacted (worker/redact.py).
    "filters": {"redact": {"()": "worker.redact.RedactFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "loggers": {
        "newsdigest": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
        # A web 500 is logged with its traceback (Django's default only prints it under DEBUG).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
