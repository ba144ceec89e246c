"""Issue 13.6: no credential of a configured URL on /health, in errors or in logs."""

import logging

import pytest

from worker.ingest import fetch
from worker.redact import RedactFilter, redact_text, redact_url

pytestmark = pytest.mark.django_db

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize("url", [
    f"redis://:{SECRET}@127.0.0.1:1/0",
    f"redis://127.0.0.1:1/0?password={SECRET}",
    f"redis://user:{SECRET}@127.0.0.1:1/0?password={SECRET}&db=0",
    f"rediss://127.0.0.1:1/0?ssl_cert_reqs=none&password={SECRET}",
    f"unix:///tmp/nowhere.sock?password={SECRET}",
    f"amqp://guest:{SECRET}@127.0.0.1:1//",
])
def test_health_shows_no_broker_password_in_any_url_form(client, settings, url):
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    response = client.get("/health")
    assert response.status_code == 503
    assert SECRET not in response.content.decode()
    assert "127.0.0.1" in response.content.decode() or "nowhere.sock" in response.content.decode()


def test_a_url_without_credentials_is_shown_unchanged():
    assert redact_url("redis://cache:6379/0?db=1") == "redis://cache:6379/0?db=1"


def test_a_fetch_error_keeps_no_feed_password(settings):
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch(f"ftp://reader:{SECRET}@feeds.example/rss?token={SECRET}")
    assert SECRET not in str(caught.value) and "feeds.example" in str(caught.value)


def test_a_log_line_quoting_a_url_loses_its_credentials():
    record = logging.LogRecord("newsdigest", logging.ERROR, __file__, 1, "cannot reach %s",
                               (f"redis://h:6379/0?password={SECRET}",), None)
    RedactFilter().filter(record)
    assert SECRET not in record.getMessage() and "redis://h:6379/0?password=***" in record.getMessage()


def test_every_url_inside_a_message_is_redacted():
    text = redact_text(f"a redis://:{SECRET}@a/0 then https://b/x?api_key={SECRET}&page=2 end")
    assert SECRET not in text and "page=2" in text


def test_the_console_log_handler_redacts():
    from django.conf import settings

    assert "redact" in settings.LOGGING["handlers"]["console"]["filters"]
