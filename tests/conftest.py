import pytest

from tests import support


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
    with support.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def smtp(settings):
    """A real SMTP server; Django's SMTP backend pointed at it."""
    with support.smtp_server() as (controller, handler):
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
