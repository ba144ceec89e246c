"""Bounces and complaints: only reports about a message this service sent act, only on that
delivery's subscriber, each class as a deliverability engineer expects; ESP events; auto-pause."""

import io
import subprocess
import sys
from datetime import timedelta

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.core.management import call_command
from django.utils import timezone

from tests.helpers.factories import approved_digest
from tests.helpers.paths import REPO
from tests.helpers.processes import subprocess_env
from worker import bounce_reports, bounces, deliver, render
from worker.models import AuditEntry, Delivery, Digest, Subscriber, SuppressionEvent

BOUNCE_ADDRESS = "bounces@news.example"


def dsn(recipients: list[str] | str, status: str, *, action: str = "failed", original_id: str = "<none@x>",
        diagnostic: str = "", to: str = BOUNCE_ADDRESS) -> bytes:
    recipients = [recipients] if isinstance(recipients, str) else recipients
    blocks = "".join(
        f"Final-Recipient: rfc822; {r}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic or status[0] + '50 ' + status + ' mailbox problem'}\r\n\r\n"
        for r in recipients)
    return (
        f"From: MAILER-DAEMON@mx.example\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example\r\n\r\n{blocks}"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_id}\r\nSubject: Today's brief\r\n\r\n"
        "--B--\r\n"
    ).encode()


def arf(recipient: str, original_id: str, return_path: str = "") -> bytes:
    return (
        "From: feedback@mailbox.example\r\nTo: abuse@news.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: Example-FBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: {recipient}\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Return-Path: <{return_path}>\r\nFrom: brief@news.example\r\nTo: {recipient}\r\n"
        f"Message-ID: {original_id}\r\nSubject: Today's brief\r\n\r\n"
        "Hello\r\n--F--\r\n"
    ).encode()


@pytest.fixture(autouse=True)
def verp(settings):
    settings.NEWSDIGEST_BOUNCE_ADDRESS = BOUNCE_ADDRESS


@pytest.fixture
def digest():
    return approved_digest(3)


def sent(digest: Digest, index: int = 0) -> Delivery:
    """A delivery of `digest` the mail server accepted, as the deliver stage leaves it."""
    subscriber = Subscriber.objects.filter(subscriptions__newsletter=digest.newsletter).order_by("pk")[index]
    return Delivery.objects.create(digest=digest, subscriber=subscriber, status=Delivery.Status.SENT,
                                   message_id=deliver.message_id(digest, subscriber), sent_at=timezone.now())


def status_of(delivery: Delivery) -> str:
    delivery.subscriber.refresh_from_db()
    return delivery.subscriber.status


# --- acting only on our own messages (security issue, item 7) -------------------------------------

@pytest.mark.django_db
def test_a_hard_bounce_of_a_sent_message_suppresses_at_once(digest):
    row = sent(digest)
    assert "hard_bounce" in bounces.handle_inbound(dsn(row.subscriber.email, "5.1.1", original_id=row.message_id))
    assert status_of(row) == Subscriber.Status.BOUNCED
    event = SuppressionEvent.objects.get()
    assert (event.kind, event.delivery, event.digest, event.status) == ("hard_bounce", row, digest, "5.1.1")
    row.refresh_from_db()
    assert row.status == Delivery.Status.BOUNCED


@pytest.mark.django_db
def test_a_forged_bounce_listing_20000_addresses_suppresses_nothing(digest, settings):
    settings.NEWSDIGEST_INBOUND_MAX_BYTES = 10_000_000  # past the size check, to the content
    sent(digest)
    everyone = list(Subscriber.objects.values_list("email", flat=True))
    listed = everyone + [f"someone{i}@elsewhere.example" for i in range(20_000 - len(everyone))]
    answer = bounces.handle_inbound(dsn(listed, "5.1.1", original_id="<forged@x>"))
    assert answer.startswith("ignored: a report listing 20000 recipients")
    assert set(Subscriber.objects.values_list("status", flat=True)) == {Subscriber.Status.ACTIVE}
    assert not SuppressionEvent.objects.exists()


@pytest.mark.django_db
def test_a_forged_bounce_naming_subscribers_but_no_message_of_ours_suppresses_nothing(digest):
    sent(digest)
    everyone = list(Subscriber.objects.values_list("email", flat=True))
    answer = bounces.handle_inbound(dsn(everyone, "5.1.1", original_id="<forged@x>"))
    assert answer == "ignored: bounce that refers to no message this service sent (3 addresses listed, none suppressed)"
    assert set(Subscriber.objects.values_list("status", flat=True)) == {Subscriber.Status.ACTIVE}
    assert not SuppressionEvent.objects.exists()


@pytest.mark.django_db
def test_a_bounce_of_our_message_suppresses_only_that_deliverys_subscriber(digest):
    row, other = sent(digest, 0), sent(digest, 1)
    listed = [other.subscriber.email, row.subscriber.email] + [f"x{i}@elsewhere.example" for i in range(90)]
    bounces.handle_inbound(dsn(listed, "5.1.1", original_id=row.message_id))
    assert status_of(row) == Subscriber.Status.BOUNCED
    assert status_of(other) == Subscriber.Status.ACTIVE
    assert SuppressionEvent.objects.count() == 1


@pytest.mark.django_db
def test_our_message_id_with_someone_elses_address_suppresses_nothing(digest):
    row, other = sent(digest, 0), sent(digest, 1)
    # Message-IDs are guessable; the delivery's own address must be among the failed ones.
    bounces.handle_inbound(dsn(other.subscriber.email, "5.1.1", original_id=row.message_id))
    assert {status_of(row), status_of(other)} == {Subscriber.Status.ACTIVE}


@pytest.mark.django_db
def test_the_signed_return_path_names_the_delivery_when_the_server_rewrote_the_address(digest):
    row = sent(digest)
    path = bounces.return_path(digest.pk, row.subscriber_id)
    bounces.handle_inbound(dsn("forwarded-alias@other.example", "5.1.1"), envelope_recipient=path)
    assert status_of(row) == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_the_return_path_is_found_in_the_bounce_headers_too(digest):
    row = sent(digest)
    path = bounces.return_path(digest.pk, row.subscriber_id)
    bounces.handle_inbound(dsn("rewritten@other.example", "5.1.1", to=path))
    assert status_of(row) == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_a_return_path_with_a_forged_signature_is_ignored(digest):
    row = sent(digest)
    genuine = bounces.return_path(digest.pk, row.subscriber_id)
    local, _, domain = genuine.partition("@")
    tampered = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"
    guessed = f"bounces+{digest.pk}-{row.subscriber_id}-{'0' * 16}@news.example"
    for path in (tampered, guessed, genuine.replace("+", "+0")):
        assert bounces.handle_inbound(dsn(row.subscriber.email, "5.1.1"), envelope_recipient=path).startswith("ignored")
    assert status_of(row) == Subscriber.Status.ACTIVE


def test_the_return_path_survives_case_folding(settings):
    settings.NEWSDIGEST_BOUNCE_ADDRESS = BOUNCE_ADDRESS
    assert bounces.delivery_of_return_path(bounces.return_path(12, 345).upper()) == (12, 345)
    assert bounces.delivery_of_return_path("bounces@news.example") is None


@pytest.mark.django_db
def test_digests_go_out_with_the_delivery_s_return_path(digest, smtp, settings):
    render.ensure_rendered(digest)
    senders = []

    def accept(envelope):
        senders.append((envelope.mail_from, envelope.rcpt_tos[0]))
        return "250 OK"

    smtp.reply = accept
    deliver.begin_send(digest.pk)
    for batch in deliver.fan_out(digest.pk):
        deliver.send_batch(batch)
    expected = {(bounces.return_path(digest.pk, s.pk), s.email) for s in Subscriber.objects.all()}
    assert set(senders) == expected


# --- classes -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_soft_bounces_suppress_after_the_limit_within_the_window(digest, settings):
    settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT = 2
    row = sent(digest)
    bounces.handle_inbound(dsn(row.subscriber.email, "4.2.2", original_id=row.message_id))
    assert status_of(row) == Subscriber.Status.ACTIVE
    second = Delivery.objects.create(digest=approved_digest(0), subscriber=row.subscriber,
                                     status=Delivery.Status.SENT, message_id="<nd.second@x>")
    bounces.handle_inbound(dsn(row.subscriber.email, "5.2.2", original_id=second.message_id,
                               diagnostic="552 5.2.2 Mailbox full"))
    assert status_of(row) == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_soft_bounces_older_than_the_window_do_not_count(digest, settings):
    settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT, settings.NEWSDIGEST_SOFT_BOUNCE_WINDOW_DAYS = 2, 7
    row = sent(digest)
    bounces.handle_inbound(dsn(row.subscriber.email, "4.2.2", original_id=row.message_id))
    SuppressionEvent.objects.update(created_at=timezone.now() - timedelta(days=8))
    second = Delivery.objects.create(digest=approved_digest(0), subscriber=row.subscriber,
                                     status=Delivery.Status.SENT, message_id="<nd.second@x>")
    bounces.handle_inbound(dsn(row.subscriber.email, "4.2.2", original_id=second.message_id))
    assert status_of(row) == Subscriber.Status.ACTIVE


@pytest.mark.django_db
def test_after_an_unsuppress_soft_bounces_count_afresh(digest, settings, django_user_model):
    settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT = 2
    first, second, third = sent(digest), *(
        Delivery.objects.create(digest=approved_digest(0), subscriber=Subscriber.objects.order_by("pk")[0],
                                status=Delivery.Status.SENT, message_id=f"<nd.extra{i}@x>") for i in range(2))
    for row in (first, second):
        bounces.handle_inbound(dsn(row.subscriber.email, "4.2.2", original_id=row.message_id))
    assert status_of(first) == Subscriber.Status.BOUNCED
    bounces.unsuppress(first.subscriber.email, django_user_model.objects.create_user("ops"))
    bounces.handle_inbound(dsn(third.subscriber.email, "4.2.2", original_id=third.message_id))
    assert status_of(first) == Subscriber.Status.ACTIVE


@pytest.mark.django_db
def test_one_message_failing_softly_twice_counts_once(digest, settings):
    settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT = 2
    row = sent(digest)
    for _ in range(2):
        bounces.handle_inbound(dsn(row.subscriber.email, "4.2.2", original_id=row.message_id))
    assert status_of(row) == Subscriber.Status.ACTIVE


@pytest.mark.django_db
def test_a_policy_bounce_never_suppresses_and_is_recorded_with_the_servers_words(digest):
    row = sent(digest)
    words = "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
    bounces.handle_inbound(dsn(row.subscriber.email, "5.7.1", original_id=row.message_id, diagnostic=words))
    assert status_of(row) == Subscriber.Status.ACTIVE
    event = SuppressionEvent.objects.get()
    assert event.kind == SuppressionEvent.Kind.POLICY_BOUNCE and "spamhaus" in event.detail


@pytest.mark.django_db
def test_a_full_mailbox_with_a_permanent_code_is_soft(digest):
    row = sent(digest)
    bounces.handle_inbound(dsn(row.subscriber.email, "5.2.2", original_id=row.message_id,
                               diagnostic="552 5.2.2 The email account that you tried to reach is over quota"))
    assert status_of(row) == Subscriber.Status.ACTIVE
    assert SuppressionEvent.objects.get().kind == SuppressionEvent.Kind.SOFT_BOUNCE


@pytest.mark.django_db
def test_a_delayed_notice_is_not_a_bounce(digest):
    row = sent(digest)
    answer = bounces.handle_inbound(dsn(row.subscriber.email, "4.4.7", action="delayed", original_id=row.message_id))
    assert answer.startswith("delayed") and not SuppressionEvent.objects.exists()


def test_original_recipient_wins_over_final_recipient_and_pipes_are_refused(settings):
    raw = dsn("x@y.example", "5.1.1").replace(
        b"Final-Recipient: rfc822; x@y.example", b"Original-Recipient: rfc822;<Reader@Example.COM>\r\n"
                                                 b"Final-Recipient: rfc822; local-alias@mx.example")
    assert [f.email for f in bounce_reports.read(raw).failures] == ["reader@example.com"]
    assert bounce_reports.clean_address('rfc822; "|/usr/bin/evil"') == ""
    assert bounce_reports.clean_address("x-unix; /var/mail/reader") == ""


@pytest.mark.django_db
def test_an_arf_complaint_suppresses_and_counts_in_the_complaint_rate(digest):
    row = sent(digest)
    assert bounces.handle_inbound(arf(row.subscriber.email, row.message_id)).startswith("complaint")
    assert status_of(row) == Subscriber.Status.COMPLAINED
    assert bounces.digest_rates(digest.pk)["complaint_rate"] == 1.0


@pytest.mark.django_db
def test_a_redacted_complaint_is_matched_by_the_originals_return_path(digest):
    row = sent(digest)
    path = bounces.return_path(digest.pk, row.subscriber_id)
    bounces.handle_inbound(arf("redacted@redacted.example", "<unknown@x>", return_path=path).replace(
        b"Original-Rcpt-To: redacted@redacted.example\r\n", b""))
    assert status_of(row) == Subscriber.Status.COMPLAINED


# --- protecting the sender -----------------------------------------------------------------------

@pytest.fixture
def sending(settings):
    settings.NEWSDIGEST_PAUSE_MIN_SENT = 10
    digest = approved_digest(20)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENDING)
    return digest, [sent(digest, i) for i in range(20)]


@pytest.mark.django_db
def test_a_send_auto_pauses_when_the_complaint_rate_passes_the_threshold(sending):
    digest, rows = sending
    bounces.handle_inbound(arf(rows[0].subscriber.email, rows[0].message_id))
    digest.refresh_from_db()
    assert digest.status == Digest.Status.PAUSED
    assert digest.pause_reason.startswith("auto-paused: complaint rate 5.00% over 0.30%")
    assert AuditEntry.objects.filter(digest=digest, action="auto-paused").exists()


@pytest.mark.django_db
def test_a_send_auto_pauses_when_policy_and_hard_bounces_pass_the_bounce_rate(sending, settings):
    digest, rows = sending
    settings.NEWSDIGEST_PAUSE_BOUNCE_RATE = 0.05
    bounces.handle_inbound(dsn(rows[0].subscriber.email, "5.1.1", original_id=rows[0].message_id))
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENDING  # 1 in 20 is 5%, not over
    bounces.handle_inbound(dsn(rows[1].subscriber.email, "5.7.1", original_id=rows[1].message_id,
                               diagnostic="550 5.7.1 rejected: sending IP listed at bl.spamcop.net"))
    digest.refresh_from_db()
    assert digest.status == Digest.Status.PAUSED and "hard+policy bounce rate 10.00%" in digest.pause_reason


@pytest.mark.django_db
def test_rates_wait_for_the_minimum_sample(sending, settings):
    digest, rows = sending
    settings.NEWSDIGEST_PAUSE_MIN_SENT = 21
    bounces.handle_inbound(arf(rows[0].subscriber.email, rows[0].message_id))
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENDING


@pytest.mark.django_db
def test_an_operator_can_unsuppress_an_address_and_it_is_audited(digest, django_user_model):
    row = sent(digest)
    bounces.handle_inbound(dsn(row.subscriber.email, "5.1.1", original_id=row.message_id))
    operator = django_user_model.objects.create_user("ops")
    assert bounces.unsuppress(row.subscriber.email.upper(), operator).endswith("bounced -> active")
    assert status_of(row) == Subscriber.Status.ACTIVE
    entry = AuditEntry.objects.get(action="unsuppressed")
    assert (entry.user, entry.detail) == (operator, {"email": row.subscriber.email, "was": "bounced"})
    with pytest.raises(ValueError, match="not suppressed"):
        bounces.unsuppress(row.subscriber.email, operator)


# --- inbound command ------------------------------------------------------------------------------

def run_inbound(raw: bytes, monkeypatch) -> str:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    call_command("inbound", stdout=out)
    return out.getvalue().strip()


def nested(depth: int) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return f"From: MAILER-DAEMON@mx.example\nSubject: Undelivered\nMIME-Version: 1.0\n{opening}" \
           f"Content-Type: text/plain\n\nx\n{closing}".encode()


@pytest.mark.django_db
def test_deeply_nested_mime_is_refused_with_one_line_and_exit_0(monkeypatch):
    answer = run_inbound(nested(5000), monkeypatch)
    assert answer.startswith("ignored: MIME nested deeper") and "\n" not in answer


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_inbound_command_exits_0_on_deeply_nested_mime():
    # Exit 1 would make Postfix bounce the bounce; the real command, as Postfix runs it.
    result = subprocess.run([sys.executable, "-m", "worker", "inbound"], input=nested(5000),
                            env=subprocess_env(), cwd=REPO, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("ignored: MIME nested deeper")


@pytest.mark.django_db
def test_an_oversized_message_is_refused_with_one_line(monkeypatch, settings):
    settings.NEWSDIGEST_INBOUND_MAX_BYTES = 1000
    answer = run_inbound(dsn("a@b.example", "5.1.1") + b"x" * 5000, monkeypatch)
    assert answer.startswith("ignored: message of 1001 bytes is larger")


@pytest.mark.django_db
def test_the_command_takes_the_envelope_recipient_from_postfix(digest, monkeypatch):
    row = sent(digest)
    monkeypatch.setenv("ORIGINAL_RECIPIENT", bounces.return_path(digest.pk, row.subscriber_id))
    run_inbound(dsn("rewritten@other.example", "5.1.1"), monkeypatch)
    assert status_of(row) == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_an_auto_reply_is_not_a_bounce(digest):
    row = sent(digest)
    reply = (f"From: {row.subscriber.email}\r\nTo: brief@news.example\r\nSubject: Out of office\r\n"
             f"Auto-Submitted: auto-replied\r\nIn-Reply-To: {row.message_id}\r\n\r\n"
             "I am away until Monday; your message to me could not be read.\r\n").encode()
    assert bounces.handle_inbound(reply).startswith("ignored: auto-reply")
    assert status_of(row) == Subscriber.Status.ACTIVE


# --- ESP events (anymail) -------------------------------------------------------------------------

def send_event(event_type: str, recipient: str, **fields) -> None:
    event = AnymailTrackingEvent(event_type=event_type, recipient=recipient, message_id="esp-1",
                                 description="from the ESP", esp_event={}, **fields)
    tracking.send(sender=object, event=event, esp_name="Postmark")


@pytest.mark.django_db
def test_an_esp_bounce_event_suppresses_and_names_the_delivery(digest):
    row = sent(digest)
    send_event("bounced", row.subscriber.email, reject_reason="invalid")
    assert status_of(row) == Subscriber.Status.BOUNCED
    assert SuppressionEvent.objects.get().delivery == row


@pytest.mark.django_db
def test_an_esp_block_event_is_policy_and_suppresses_nobody(digest):
    row = sent(digest)
    send_event("bounced", row.subscriber.email, reject_reason="blocked",
               mta_response="550 5.7.1 Our system has detected an unusual rate of unsolicited mail")
    assert status_of(row) == Subscriber.Status.ACTIVE
    assert SuppressionEvent.objects.get().kind == SuppressionEvent.Kind.POLICY_BOUNCE


@pytest.mark.django_db
def test_an_esp_complaint_suppresses_even_a_bounced_address(digest):
    row = sent(digest)
    send_event("bounced", row.subscriber.email, reject_reason="invalid")
    send_event("complained", row.subscriber.email.upper())
    assert status_of(row) == Subscriber.Status.COMPLAINED
    assert list(SuppressionEvent.objects.values_list("kind", flat=True).order_by("pk")) == [
        "hard_bounce", "complaint"]


@pytest.mark.django_db
def test_esp_events_that_are_not_failures_change_nothing(digest):
    row = sent(digest)
    for event_type in ("opened", "deferred", "delivered"):
        send_event(event_type, row.subscriber.email)
    assert status_of(row) == Subscriber.Status.ACTIVE and not SuppressionEvent.objects.exists()


def test_the_anymail_webhook_url_of_the_configured_esp_is_mounted():
    from django.urls import reverse

    # Which ESP answers there, and with which credentials, is tested in test_security_webhooks.py.
    assert reverse("anymail-tracking", args=["postmark"]) == "/anymail/postmark/tracking/"
