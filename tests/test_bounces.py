"""Bounces and complaints: DSN parsing and anymail tracking events suppress addresses."""

import pytest
from anymail.signals import AnymailTrackingEvent, tracking

from tests import support
from worker import bounces
from worker.models import Delivery, Subscriber, SuppressionEvent


def dsn(recipient: str, status: str, action: str = "failed", original_id: str = "<nd.1.1@x>") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\r\nTo: bounces@news.example\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 mailbox problem\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_id}\r\nSubject: Today's brief\r\n\r\n"
        "--B--\r\n"
    ).encode()


@pytest.fixture
def reader():
    support.approved_digest(1)
    return Subscriber.objects.get()


def state(reader) -> tuple[str, int]:
    reader.refresh_from_db()
    return reader.status, reader.soft_bounces


@pytest.mark.django_db
def test_a_hard_dsn_bounce_suppresses_at_once(reader):
    assert "hard_bounce" in bounces.handle_inbound(dsn(reader.email, "5.1.1"))
    assert state(reader)[0] == Subscriber.Status.BOUNCED
    event = SuppressionEvent.objects.get()
    assert (event.kind, event.message_id) == ("hard_bounce", "<nd.1.1@x>")


@pytest.mark.django_db
def test_soft_bounces_suppress_after_the_configured_count(reader, settings):
    settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT = 2
    bounces.handle_inbound(dsn(reader.email, "4.2.2"))
    assert state(reader) == (Subscriber.Status.ACTIVE, 1)
    bounces.handle_inbound(dsn(reader.email, "4.2.2"))
    assert state(reader) == (Subscriber.Status.BOUNCED, 2)


@pytest.mark.django_db
def test_a_delayed_notice_is_not_a_bounce(reader):
    assert bounces.handle_inbound(dsn(reader.email, "4.4.7", action="delayed")).startswith("ignored")
    assert state(reader) == (Subscriber.Status.ACTIVE, 0)


@pytest.mark.django_db
def test_a_hard_bounce_marks_the_sent_delivery_bounced(reader):
    digest = support.approved_digest(0)
    row = Delivery.objects.create(digest=digest, subscriber=reader, status=Delivery.Status.SENT,
                                  message_id="<nd.9.9@x>")
    bounces.handle_inbound(dsn(reader.email, "5.1.1", original_id="<nd.9.9@x>"))
    row.refresh_from_db()
    assert row.status == Delivery.Status.BOUNCED


@pytest.mark.django_db
def test_an_unknown_address_is_recorded_only(reader):
    bounces.handle_inbound(dsn("stranger@elsewhere.example", "5.1.1"))
    assert SuppressionEvent.objects.get().subscriber is None
    assert state(reader)[0] == Subscriber.Status.ACTIVE


def send_event(event_type: str, recipient: str) -> None:
    event = AnymailTrackingEvent(event_type=event_type, recipient=recipient, message_id="esp-1",
                                 description="from the ESP", esp_event={})
    tracking.send(sender=object, event=event, esp_name="Postmark")


@pytest.mark.django_db
def test_an_esp_bounce_event_suppresses(reader):
    send_event("bounced", reader.email)
    assert state(reader)[0] == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_an_esp_complaint_suppresses_even_a_bounced_address(reader):
    send_event("bounced", reader.email)
    send_event("complained", reader.email.upper())
    assert state(reader)[0] == Subscriber.Status.COMPLAINED
    assert list(SuppressionEvent.objects.values_list("kind", flat=True).order_by("pk")) == [
        "hard_bounce", "complaint"]


@pytest.mark.django_db
def test_esp_events_that_are_not_failures_change_nothing(reader):
    send_event("opened", reader.email)
    assert state(reader) == (Subscriber.Status.ACTIVE, 0) and not SuppressionEvent.objects.exists()


def test_the_anymail_webhook_url_of_the_configured_esp_is_mounted():
    from django.urls import reverse

    # Which ESP answers there, and with which credentials, is tested in test_security_webhooks.py.
    assert reverse("anymail-tracking", args=["postmark"]) == "/anymail/postmark/tracking/"
