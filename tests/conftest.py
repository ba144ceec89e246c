"""Fixtures every area uses: isolated outbox, a private Redis, a recording SMTP server, the SQLite file the
worker subprocesses share, fast passwords and the fake OpenAI-compatible server."""

import pytest

from tests.helpers.fake_openai import FakeOpenAI
from tests.helpers.mail import smtp_server
from tests.helpers.processes import redis_server


@pytest.fixture(autouse=True)
def _isolated_paths(settings, tmp_path):
    """Outbox files of a test never touch the developer's ./var, and no test inherits another's
    open mail connection (the deliver stage keeps one per process, made from the settings of its day)."""
    from worker import deliver, subscribers

    settings.OUTBOX_DIR = tmp_path / "outbox"
    subscribers._address_bucket.cache_clear()  # per-address sign-up limits are process-local without Redis
    yield
    deliver.close_connection()


@pytest.fixture
def outbox(settings):
    return settings.OUTBOX_DIR


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def smtp(settings):
    """A real SMTP server; Django's SMTP backend pointed at it."""
    with smtp_server() as (controller, handler):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        yield handler


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """SQLite test databases live in a file, so worker subprocesses can open the same one."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture
def fast_passwords(settings):
    """Logins in tests hash with MD5: the real hasher's cost is for attackers, not for the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake_openai(settings):
    """A running fake server, with settings pointed at it and the LLM module's caches reset."""
    from worker import ratelimit
    from worker.summarize import llm_client

    server = FakeOpenAI().start()
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_API_KEY = "test-key"
    settings.NEWSDIGEST_LLM_MODEL = "fake-model"
    settings.NEWSDIGEST_LLM_TIMEOUT = 5.0
    settings.NEWSDIGEST_LLM_MAX_RETRIES = 2
    settings.NEWSDIGEST_LLM_BACKOFF_BASE = 0.01
    settings.NEWSDIGEST_LLM_BACKOFF_MAX = 0.05
    settings.NEWSDIGEST_LLM_RPM = 0
    settings.NEWSDIGEST_LLM_TPM = 0
    settings.REDIS_URL = settings.CELERY_BROKER_URL = ""
    for cached in (ratelimit.redis_client, llm_client._buckets, llm_client._client):
        cached.cache_clear()
    llm_client._local_modes.clear()
    try:
        yield server
    finally:
        server.stop()
        for cached in (ratelimit.redis_client, llm_client._buckets, llm_client._client):
            cached.cache_clear()
        llm_client._local_modes.clear()
