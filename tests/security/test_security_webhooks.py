"""Issue 13.1: forged ESP tracking events (bounces, complaints) must not reach the suppression list."""

import base64
import json

import pytest
from anymail.signals import tracking
from django.core import checks

from worker.web import webhooks

BOUNCE = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "ID": 42, "MessageID": "abc",
          "Email": "victim@example.com", "BouncedAt": "2026-01-01T00:00:00Z", "Description": "forged"}


@pytest.fixture
def received():
    """Every tracking event the webhook let through to the signal (worker/bounces.py listens there)."""
    events = []

    def listener(sender, event, esp_name, **kwargs):
        events.append((esp_name, event.event_type, event.recipient))

    tracking.connect(listener, dispatch_uid="test-security-webhooks")
    yield events
    tracking.disconnect(dispatch_uid="test-security-webhooks")


@pytest.fixture
def postmark(settings):
    settings.NEWSDIGEST_TRACKING_ESP = "postmark"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret-value"}
    return settings


def auth(credentials: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def post(client, esp: str, payload: dict, **extra):
    return client.post(f"/anymail/{esp}/tracking/", json.dumps(payload), content_type="application/json", **extra)


@pytest.mark.django_db
def test_a_forged_postmark_bounce_without_credentials_is_refused(client, postmark, received):
    assert post(client, "postmark", BOUNCE).status_code == 400
    assert received == []


@pytest.mark.django_db
def test_a_forged_postmark_bounce_with_a_wrong_secret_is_refused(client, postmark, received):
    assert post(client, "postmark", BOUNCE, **auth("hook:guess")).status_code == 400
    assert received == []


@pytest.mark.django_db
def test_a_postmark_bounce_with_the_secret_reaches_the_bounce_handler(client, postmark, received):
    assert post(client, "postmark", BOUNCE, **auth("hook:s3cret-value")).status_code == 200
    assert received == [("Postmark", "bounced", "victim@example.com")]


@pytest.mark.django_db
@pytest.mark.parametrize("esp", ["sendgrid", "mailjet", "mailgun"])
def test_a_forged_event_for_an_esp_that_is_not_configured_finds_no_endpoint(client, postmark, received, esp):
    assert post(client, esp, [{"event": "bounce", "email": "victim@example.com"}],
                **auth("hook:s3cret-value")).status_code == 404
    assert received == []


@pytest.mark.django_db
def test_with_no_esp_configured_there_is_no_tracking_endpoint(client, settings, received):
    settings.NEWSDIGEST_TRACKING_ESP = ""
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret-value"}
    assert post(client, "postmark", BOUNCE, **auth("hook:s3cret-value")).status_code == 404
    assert received == []


@pytest.mark.django_db
def test_a_receiver_without_a_secret_refuses_every_event(client, settings, received):
    settings.NEWSDIGEST_TRACKING_ESP = "postmark"
    settings.ANYMAIL = {}
    assert post(client, "postmark", BOUNCE).status_code == 403
    assert received == []


@pytest.mark.django_db
def test_a_mailgun_event_with_basic_auth_but_no_signing_key_is_refused(client, settings, received):
    settings.NEWSDIGEST_TRACKING_ESP = "mailgun"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret-value"}
    response = post(client, "mailgun", {"event-data": {"event": "failed", "recipient": "victim@example.com"}},
                    **auth("hook:s3cret-value"))
    assert response.status_code == 403 and b"ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY" in response.content
    assert received == []


@pytest.mark.django_db
def test_a_mailgun_event_with_a_forged_signature_is_refused(client, settings, received):
    settings.NEWSDIGEST_TRACKING_ESP = "mailgun"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret-value", "MAILGUN_WEBHOOK_SIGNING_KEY": "key-real"}
    payload = {"signature": {"token": "t", "timestamp": "1700000000", "signature": "0" * 64},
               "event-data": {"event": "failed", "severity": "permanent", "recipient": "victim@example.com"}}
    assert post(client, "mailgun", payload, **auth("hook:s3cret-value")).status_code == 400
    assert received == []


def test_the_system_check_warns_about_a_receiver_without_a_secret(settings):
    settings.NEWSDIGEST_TRACKING_ESP = "postmark"
    settings.ANYMAIL = {}
    warnings = webhooks.check_tracking_webhook(None)
    assert [w.id for w in warnings] == ["newsdigest.W001"] and "ANYMAIL_WEBHOOK_SECRET" in warnings[0].msg
    assert any(m.id == "newsdigest.W001" for m in checks.run_checks(tags=[checks.Tags.security]))


def test_the_system_check_is_quiet_with_the_secret_set(postmark):
    assert webhooks.check_tracking_webhook(None) == []


def test_an_anymail_email_backend_selects_its_tracking_webhook(monkeypatch):
    import importlib

    from worker import settings as worker_settings

    monkeypatch.setenv("EMAIL_BACKEND", "anymail.backends.sendgrid.EmailBackend")
    monkeypatch.delenv("EMAIL_URL", raising=False)
    monkeypatch.delenv("NEWSDIGEST_TRACKING_ESP", raising=False)
    try:
        assert importlib.reload(worker_settings).NEWSDIGEST_TRACKING_ESP == "sendgrid"
    finally:
        monkeypatch.undo()
        importlib.reload(worker_settings)
