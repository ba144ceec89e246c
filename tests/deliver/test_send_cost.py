"""The send loop's cheaper paths (issue 18): the compiled `sent` mark, the in-flight marks the database
computes, rate-limit tokens taken for a whole group in one round trip, and SQL that does not grow per row."""

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers.factories import approved_digest
from tests.helpers.processes import free_port
from worker import deliver, ratelimit, render
from worker.deliver import claims, sending
from worker.models import Delivery, UndeclaredTransition


def _sending_digest(subscribers: int):
    digest = approved_digest(subscribers)
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    return digest, [pk for batch in deliver.fan_out(digest.pk) for pk in batch]


@pytest.mark.django_db
def test_the_compiled_sent_mark_is_guarded_like_the_transition(settings):
    digest, ids = _sending_digest(3)
    rows = deliver.claim(ids[:2], "me")
    marks, other = claims.SentMarks("me"), claims.SentMarks("someone else")
    marks.send(rows[0].pk)
    marks.send(rows[0].pk)  # already sent: the status guard
    marks.settle()  # a mark in flight holds the connection: settled before another statement
    other.send(rows[1].pk)  # not the holder: the claim guard
    other.settle()
    marks.send(ids[2])  # still queued, never claimed
    marks.settle()
    assert (marks.lost, other.lost) == ([rows[0].pk, ids[2]], [rows[1].pk])
    sent = Delivery.objects.get(pk=rows[0].pk)
    assert (sent.status, sent.lease_until, sent.last_error) == (Delivery.Status.SENT, None, "")
    assert sent.sent_at is not None
    assert Delivery.objects.get(pk=rows[1].pk).status == Delivery.Status.SENDING
    with pytest.raises(UndeclaredTransition):
        Delivery.row_transition(from_status=Delivery.Status.SENT, to_status=Delivery.Status.QUEUED)
    with pytest.raises(TypeError):
        mark_wrong = Delivery.row_transition(from_status=Delivery.Status.SENDING, to_status=Delivery.Status.SENT,
                                             fields=("sent_at",))
        mark_wrong(rows[1].pk)


@pytest.mark.django_db
def test_in_flight_ids_written_by_the_database_are_the_messages_ids(settings, smtp):
    digest, ids = _sending_digest(4)
    assert deliver.send_batch(ids).counts["sent"] == 4
    for row in Delivery.objects.filter(pk__in=ids).select_related("subscriber"):
        assert row.message_id == deliver.message_id(digest, row.subscriber)
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(
        Delivery.objects.filter(pk__in=ids).values_list("message_id", flat=True))


def _statements(ids: list[int], monkeypatch) -> tuple[list[str], int]:
    """The SQL the batch ran through Django's cursor, and how many sent marks it issued (on PostgreSQL those
    go out through libpq's asynchronous interface, past Django's query log)."""
    marks = []
    send = claims.SentMarks.send
    monkeypatch.setattr(claims.SentMarks, "send", lambda self, pk: (marks.append(pk), send(self, pk))[1])
    with CaptureQueriesContext(connection) as queries:
        assert deliver.send_batch(ids).counts["sent"] == len(ids)
    return [q["sql"] for q in queries.captured_queries], len(marks)


@pytest.mark.django_db
def test_a_batch_reads_once_and_writes_one_sent_mark_per_message(settings, smtp, monkeypatch):
    settings.NEWSDIGEST_DELIVERY_INFLIGHT_GROUP = 5
    small, small_marks = _statements(_sending_digest(5)[1], monkeypatch)
    large, large_marks = _statements(_sending_digest(20)[1], monkeypatch)
    reads = [sum(sql.lstrip().upper().startswith("SELECT") for sql in run) for run in (small, large)]
    assert reads[0] == reads[1], "a SELECT per message or per group crept into the send loop"
    assert (small_marks, large_marks) == (5, 20)  # one committed mark per message, nothing batched across messages
    assert Delivery.objects.filter(status=Delivery.Status.SENT, possible_duplicate=False).count() == 25
    # Beyond the per-message mark, a fixed cost per batch and, per group of 5, one in-flight UPDATE in
    # its own transaction (here a savepoint and its release around it; PostgreSQL adds SET LOCAL).
    table = Delivery._meta.db_table
    other = [[sql for sql in run if not sql.startswith(f'UPDATE "{table}" SET "status" = \'sent\'')]
             for run in (small, large)]
    assert len(other[1]) - len(other[0]) <= 3 * 4


@pytest.fixture(params=["local", "redis"])
def bucket_client(request, redis_url):
    return None if request.param == "local" else redis.Redis.from_url(redis_url)


def _bucket(client, capacity: float) -> ratelimit.TokenBucket:
    bucket = ratelimit.TokenBucket(f"test:{free_port()}", 0.001, capacity=capacity, client=client)
    if client is None:  # TokenBucket falls back to the shared Redis when given none; force the local one
        bucket.client = bucket._script = bucket._block = bucket._settle = None
    return bucket


def test_tokens_for_a_group_are_taken_in_order_all_or_none(bucket_client):
    shared, a, b = _bucket(bucket_client, 3), _bucket(bucket_client, 1), _bucket(bucket_client, 1)
    granted, wait = ratelimit.take_in_order([[shared, a], [shared, b], [shared, a], [shared, b]])
    assert granted == 2 and wait > 100  # the third needs a's second token: ~1000 s at 0.001/s
    # The refused message took nothing: `shared` still holds its third token, and only one.
    assert ratelimit.take_in_order([[shared]]) == (1, 0.0)
    assert ratelimit.take_in_order([[shared]])[0] == 0
    assert ratelimit.take_in_order([]) == (0, 0.0)


def test_a_blocked_bucket_holds_the_whole_group(bucket_client):
    free, blocked = _bucket(bucket_client, 5), _bucket(bucket_client, 5)
    blocked.block_for(30)
    granted, wait = ratelimit.take_in_order([[free], [free, blocked], [free]])
    assert granted == 1 and 25 < wait <= 30


@pytest.mark.django_db
def test_throttle_group_lets_through_the_recipients_whose_domains_have_tokens(settings):
    settings.NEWSDIGEST_SEND_RATE_PER_DOMAIN = 0.001
    full, other = f"{free_port()}.example", f"{free_port()}.example"
    assert sending.throttle_group([f"a@{full}", f"b@{other}", f"c@{full}", f"d@{other}"], timeout=0.1)[0] == 2
    assert sending.throttle_group([], timeout=0.1) == (0, 0.0)
    settings.NEWSDIGEST_SEND_RATE_PER_DOMAIN = 0
    assert sending.throttle_group([f"e@{full}"] * 3, timeout=0.1) == (3, 0.0)
