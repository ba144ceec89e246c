"""Delivery stage in one process: fan-out, claims, SMTP outcomes, leases, pause/resume/cancel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers.factories import approved_digest
from tests.helpers.processes import free_port
from worker import deliver, render, subscribers
from worker.deliver import sending
from worker.models import Delivery, Digest, Subscriber, Subscription, SuppressionEvent


@pytest.fixture
def digest(settings):
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 3
    digest = approved_digest(6, unsubscribed=1, bounced=1)
    render.ensure_rendered(digest)
    return digest


def started(digest: Digest) -> list[list[int]]:
    deliver.begin_send(digest.pk)
    return deliver.fan_out(digest.pk)


def recipients(smtp) -> list[str]:
    return [m["To"].addresses[0].addr_spec for m in smtp.messages]


@pytest.mark.django_db
def test_fan_out_creates_one_row_per_active_subscriber_once(digest):
    batches = started(digest)
    assert sorted(map(len, batches)) == [3, 3]
    assert deliver.fan_out(digest.pk) == []  # a redelivered start message adds nothing
    assert Delivery.objects.filter(digest=digest).count() == 6


@pytest.mark.django_db
def test_a_second_send_of_the_same_digest_is_refused(digest):
    deliver.begin_send(digest.pk)
    with pytest.raises(deliver.SendRefused, match="already sending"):
        deliver.begin_send(digest.pk)


@pytest.mark.django_db
def test_an_unapproved_digest_is_refused(digest):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.DRAFT)
    with pytest.raises(deliver.SendRefused, match="only an approved digest"):
        deliver.begin_send(digest.pk)


@pytest.mark.django_db
def test_each_row_is_sent_once_with_its_deterministic_message_id(digest, smtp):
    for batch in started(digest):
        deliver.send_batch(batch)
    rows = Delivery.objects.filter(digest=digest).select_related("subscriber")
    assert {d.status for d in rows} == {Delivery.Status.SENT}
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(d.message_id for d in rows)
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in smtp.messages)
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT


@pytest.mark.django_db
def test_a_redelivered_batch_sends_nothing_twice(digest, smtp):
    batch = started(digest)[0]
    deliver.send_batch(batch)
    deliver.send_batch(batch)
    assert len(smtp.messages) == 3


@pytest.mark.django_db
def test_a_subscriber_who_unsubscribes_mid_send_gets_nothing_after(digest, smtp):
    first, second = started(digest)
    deliver.send_batch(first)
    leaving = Delivery.objects.get(pk=second[0]).subscriber
    subscribers.unsubscribe(render.unsubscribe_token(leaving, digest.newsletter))
    deliver.send_batch(second)
    assert leaving.email not in recipients(smtp)
    assert Delivery.objects.get(pk=second[0]).status == Delivery.Status.SKIPPED
    assert len(smtp.messages) == 5


@pytest.mark.django_db
def test_a_paused_subscriber_is_skipped(digest, smtp):
    batch = started(digest)[0]
    paused = Delivery.objects.get(pk=batch[0]).subscriber
    Subscriber.objects.filter(pk=paused.pk).update(paused=True)
    counts = deliver.send_batch(batch).counts
    assert counts["skipped"] == 1 and counts["sent"] == 2
    assert paused.email not in recipients(smtp)


@pytest.mark.django_db
def test_a_5xx_fails_the_row_for_good_with_the_servers_reply(digest, smtp):
    smtp.reply = lambda envelope: "550 5.1.1 no such user"
    batch = started(digest)[0]
    result = deliver.send_batch(batch)
    assert result.counts["failed"] == 3 and not result.retry_ids
    row = Delivery.objects.get(pk=batch[0])
    assert row.status == Delivery.Status.FAILED and "550 5.1.1 no such user" in row.last_error


@pytest.mark.django_db
def test_a_recipient_refused_as_unknown_during_smtp_is_suppressed_at_once(digest, smtp):
    smtp.rcpt_reply = lambda address: f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    batch = started(digest)[0]
    deliver.send_batch(batch)
    row = Delivery.objects.select_related("subscriber").get(pk=batch[0])
    assert row.status == Delivery.Status.FAILED
    assert row.subscriber.status == Subscriber.Status.BOUNCED
    assert SuppressionEvent.objects.get(delivery=row).kind == SuppressionEvent.Kind.HARD_BOUNCE


@pytest.mark.django_db
def test_a_recipient_refused_for_our_reputation_never_suppresses_the_reader(digest, smtp):
    smtp.rcpt_reply = lambda address: "550 5.7.1 Service unavailable; client host blocked using Spamhaus"
    batch = started(digest)[0]
    deliver.send_batch(batch)
    row = Delivery.objects.select_related("subscriber").get(pk=batch[0])
    assert row.subscriber.status == Subscriber.Status.ACTIVE
    assert SuppressionEvent.objects.get(delivery=row).kind == SuppressionEvent.Kind.POLICY_BOUNCE


@pytest.mark.django_db
def test_a_refused_message_body_suppresses_nobody(digest, smtp):
    smtp.reply = lambda envelope: "550 5.1.1 no such user"
    deliver.send_batch(started(digest)[0])
    assert not SuppressionEvent.objects.exists()


@pytest.mark.django_db
def test_a_4xx_puts_the_row_back_with_a_backoff(digest, smtp):
    smtp.reply = lambda envelope: "451 4.3.0 try later"
    batch = started(digest)[0]
    result = deliver.send_batch(batch)
    assert sorted(result.retry_ids) == sorted(batch) and result.retry_in > 0
    row = Delivery.objects.get(pk=batch[0])
    assert (row.status, row.attempts, row.possible_duplicate) == (Delivery.Status.QUEUED, 1, False)
    smtp.reply = None
    deliver.send_batch(result.retry_ids)
    assert len(smtp.messages) == 3


@pytest.mark.django_db
def test_the_attempt_cap_fails_a_row_that_keeps_deferring(digest, smtp, settings):
    settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS = 2
    settings.NEWSDIGEST_DELIVERY_PAUSE_AFTER_ERRORS = 0
    smtp.reply = lambda envelope: "451 4.3.0 try later"
    batch = started(digest)[0]
    deliver.send_batch(batch)
    deliver.send_batch(batch)
    assert deliver.send_batch(batch).counts["sent"] == 0
    row = Delivery.objects.get(pk=batch[0])
    assert row.status == Delivery.Status.FAILED and row.last_error.startswith("gave up after 2 attempts")


@pytest.mark.django_db
def test_consecutive_errors_pause_the_digest(digest, smtp, settings):
    settings.NEWSDIGEST_DELIVERY_PAUSE_AFTER_ERRORS = 2
    smtp.reply = lambda envelope: "451 4.3.0 try later"
    deliver.send_batch(started(digest)[0])
    paused = Digest.objects.get(pk=digest.pk)
    assert paused.status == Digest.Status.PAUSED and "2 consecutive errors" in paused.pause_reason


@pytest.mark.django_db
def test_a_claimed_row_cannot_be_claimed_again(digest):
    batch = started(digest)[0]
    assert len(deliver.claim(batch, "a")) == 3
    assert deliver.claim(batch, "b") == []


@pytest.mark.django_db
def test_a_claim_waits_for_not_before(digest):
    batch = started(digest)[0]
    Delivery.objects.filter(pk=batch[0]).update(not_before=timezone.now() + timedelta(hours=1))
    assert [d.pk for d in deliver.claim(batch, "a")] == batch[1:]


@pytest.mark.django_db
def test_an_expired_lease_mid_send_comes_back_flagged_as_possible_duplicate(digest):
    batch = started(digest)[0]
    deliver.claim(batch, "dead-worker")
    Delivery.objects.filter(pk=batch[0]).update(message_id="<in-flight@x>")
    Delivery.objects.filter(pk__in=batch).update(lease_until=timezone.now() - timedelta(seconds=1))
    deliver.sweep()
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=batch)}
    assert {d.status for d in rows.values()} == {Delivery.Status.QUEUED}
    assert [pk for pk, d in rows.items() if d.possible_duplicate] == [batch[0]]
    assert [r["delivery"] for r in deliver.report(digest.pk)["possible_duplicate_rows"]] == [batch[0]]


@pytest.mark.django_db
def test_the_sweeper_renudges_rows_whose_message_was_lost(digest, settings):
    settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS = 0
    started(digest)
    assert sum(map(len, deliver.sweep())) == 6


@pytest.mark.django_db
def test_the_sweeper_does_not_finish_a_digest_before_its_fan_out(digest):
    deliver.begin_send(digest.pk)
    deliver.sweep()
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENDING
    assert sum(map(len, deliver.fan_out(digest.pk))) == 6


@pytest.mark.django_db
def test_a_paused_digest_sends_nothing_until_resumed(digest, smtp):
    batches = started(digest)
    deliver.pause(digest.pk)
    assert deliver.send_batch(batches[0]).counts["sent"] == 0
    assert sum(map(len, deliver.resume(digest.pk))) == 6
    for batch in batches:
        deliver.send_batch(batch)
    assert len(smtp.messages) == 6


@pytest.mark.django_db
def test_a_digest_paused_after_the_claim_gets_its_rows_back_untried(digest, smtp, settings, monkeypatch):
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 10
    batch = started(digest)[0]
    claim = deliver.claim

    def claim_then_pause(ids, claimer):
        rows = claim(ids, claimer)
        deliver.pause(digest.pk)
        return rows

    monkeypatch.setattr(sending, "claim", claim_then_pause)
    result = deliver.send_batch(batch)
    assert (result.counts["released"], len(smtp.messages)) == (6, 0)
    assert Delivery.objects.filter(digest=digest, status=Delivery.Status.QUEUED, attempts=0).count() == 6


@pytest.mark.django_db
def test_cancel_skips_every_unsent_row(digest):
    started(digest)
    assert deliver.cancel(digest.pk) == 6
    with pytest.raises(deliver.SendRefused):
        deliver.resume(digest.pk)


@pytest.mark.django_db
def test_a_full_domain_bucket_holds_the_message_back(settings):
    settings.NEWSDIGEST_SEND_RATE_PER_DOMAIN = 0.001
    assert deliver.throttle(f"a@{free_port()}.example", timeout=0.1) == 0
    assert deliver.throttle(f"b@{free_port()}.example", timeout=0.1) == 0
    domain = f"{free_port()}.example"
    deliver.throttle(f"a@{domain}", timeout=0.1)
    assert deliver.throttle(f"b@{domain}", timeout=0.1) > 1


@pytest.mark.django_db
def test_one_smtp_connection_serves_several_batches(digest, smtp):
    first, second = started(digest)
    deliver.send_batch(first)
    connection = sending._mailer.backend.connection
    deliver.send_batch(second)
    assert sending._mailer.backend.connection is connection


@pytest.mark.django_db
def test_new_subscribers_after_the_fan_out_are_not_added(digest, smtp):
    batches = started(digest)
    person = Subscriber.objects.create(email="late@example.com", status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=person, newsletter=digest.newsletter, status=Subscription.Status.ACTIVE)
    for batch in batches:
        deliver.send_batch(batch)
    assert "late@example.com" not in recipients(smtp)


@pytest.mark.django_db
def test_a_row_put_back_after_cancel_ends_skipped(digest):
    batch = started(digest)[0]
    deliver.cancel(digest.pk)
    Delivery.objects.filter(pk=batch[0]).update(status=Delivery.Status.QUEUED)  # a late 4xx requeue
    deliver.sweep()
    assert Delivery.objects.get(pk=batch[0]).status == Delivery.Status.SKIPPED


@pytest.mark.django_db
def test_a_row_whose_worker_keeps_dying_fails_at_the_attempt_cap(digest, settings):
    settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS = 1
    batch = started(digest)[0]
    deliver.claim(batch, "dead-worker")
    Delivery.objects.filter(pk__in=batch).update(lease_until=timezone.now() - timedelta(seconds=1))
    deliver.sweep()
    row = Delivery.objects.get(pk=batch[0])
    assert row.status == Delivery.Status.FAILED and "worker lost" in row.last_error
