"""The send loop's per-message CPU (issue 18, second pass): in-flight marks in one statement per group,
envelope addresses not parsed again, the sent mark's per-batch values bound once, one cursor per batch."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.deliver import sending
from worker.models import Delivery, Subscriber


def _claimed(subscribers: int, claimer: str = "me"):
    digest = approved_digest(subscribers)
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    ids = [pk for batch in deliver.fan_out(digest.pk) for pk in batch]
    return digest, deliver.claim(ids, claimer)


@pytest.mark.django_db
def test_the_in_flight_mark_writes_the_message_ids_of_the_rows_still_ours_in_one_statement():
    digest, rows = _claimed(4)
    Delivery.objects.filter(pk=rows[3].pk).update(claimed_by="someone else")  # its lease was taken over
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        ours = sending.in_flight_mark("me", cursor)([d.pk for d in rows])
    assert ours == {d.pk for d in rows[:3]}
    assert len(queries.captured_queries) == 1
    for row in Delivery.objects.filter(pk__in=ours).select_related("subscriber"):
        assert row.message_id == deliver.message_id(digest, row.subscriber)
    assert Delivery.objects.get(pk=rows[3].pk).message_id == ""


@pytest.mark.django_db
def test_on_postgresql_the_in_flight_commit_is_durable_while_the_batch_is_relaxed(settings):
    if connection.vendor != "postgresql":
        pytest.skip("relaxed commits are a PostgreSQL setting")
    settings.NEWSDIGEST_DELIVERY_RELAXED_COMMIT = True
    _, rows = _claimed(2)
    with sending._relaxed_commits(), CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        sending.in_flight_mark("me", cursor)([d.pk for d in rows])
    # set_config(..., true) is SET LOCAL for the statement's own transaction: durable, the session unchanged.
    assert "set_config('synchronous_commit', 'on', true)" in queries.captured_queries[0]["sql"]
    settings.NEWSDIGEST_DELIVERY_RELAXED_COMMIT = False
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        sending.in_flight_mark("me", cursor)([d.pk for d in rows])
    assert "set_config" not in queries.captured_queries[0]["sql"]


@pytest.mark.parametrize(("address", "expected"), [
    ("user1@example.com", "user1@example.com"),
    ("bounce+1-2-abc@bounces.example", "bounce+1-2-abc@bounces.example"),
    ("Morning Brief <brief@news.example>", "brief@news.example"),
    ('"Doe, J <x@evil.example>" <j@example.com>', "j@example.com"),
    ("zoe@exämple.com", "zoe@xn--exmple-cua.com"),  # not ASCII: Django's sanitising, as before
])
def test_envelope_addresses(address, expected):
    assert sending._envelope_address(address, "utf-8") == expected


@pytest.mark.django_db
def test_rcpt_to_is_the_subscribers_address_whatever_the_display_name(smtp):
    digest = approved_digest(1)
    Subscriber.objects.filter(subscriptions__newsletter=digest.newsletter).update(name='Doe, "J" <x@evil.example>')
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    seen, accept = [], smtp.handle_RCPT

    async def record(server, session, envelope, address, options):
        seen.append(address)
        return await accept(server, session, envelope, address, options)

    smtp.handle_RCPT = record
    assert deliver.send_batch(*deliver.fan_out(digest.pk)).counts["sent"] == 1
    assert seen == [Subscriber.objects.get(subscriptions__newsletter=digest.newsletter).email]
    assert smtp.messages[0]["To"].addresses[0].display_name == 'Doe, "J" <x@evil.example>'


@pytest.mark.django_db
def test_row_transition_binds_fixed_values_once_and_takes_the_others_per_row():
    _, rows = _claimed(3)
    with pytest.raises(TypeError):
        Delivery.row_transition(from_status=Delivery.Status.SENDING, to_status=Delivery.Status.SENT,
                                fields=("sent_at",), fixed={"last_error": ""})  # neither set nor matched
    def mark(claimer: str):
        return Delivery.row_transition(
            from_status=Delivery.Status.SENDING, to_status=Delivery.Status.SENT, match=("claimed_by",),
            fields=("sent_at", "lease_until", "last_error"),
            fixed={"claimed_by": claimer, "lease_until": None, "last_error": ""})

    assert mark("me")(rows[0].pk, sent_at=timezone.now()) == 1
    with connection.cursor() as cursor:
        assert mark("me")(rows[1].pk, cursor=cursor, sent_at=timezone.now()) == 1
        assert mark("someone else")(rows[2].pk, cursor=cursor, sent_at=timezone.now()) == 0
    moved = Delivery.objects.filter(pk__in=[d.pk for d in rows[:2]])
    assert {(d.status, d.lease_until, d.last_error, d.sent_at is not None) for d in moved} == {
        (Delivery.Status.SENT, None, "", True)}
