"""Claiming deliveries: which rows a worker holds, under what lease, and how it lets them go.

A claim is a guarded queued -> sending move (SELECT ... FOR UPDATE SKIP LOCKED first on PostgreSQL)
that gives each row to one worker under a lease; `finish` and `release` only touch rows this worker
still holds, so a row whose lease was taken over is left to its new owner.
"""

import logging
import os
import re
import select
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from psycopg.pq import ExecStatus, PGresult

from ..models import Delivery, Digest, Subscriber, Subscription
from ..render import Recipient

log = logging.getLogger("newsdigest.deliver")

OPEN_ROWS = (Delivery.Status.QUEUED, Delivery.Status.SENDING)
FINAL_ROWS = (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.SKIPPED, Delivery.Status.BOUNCED)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row, as the send loop uses it: the columns read with the claim, no model instances per row."""

    pk: int
    digest_id: int
    subscriber_id: int
    attempts: int
    subscriber: Recipient


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def eligible_subscribers(digest: Digest) -> QuerySet[Subscriber]:
    """Who gets `digest`: active subscribers with an active subscription to its newsletter (asked at the
    fan-out and again inside each claim, so an unsubscribe since the fan-out wins)."""
    return Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE,
        subscriptions__newsletter_id=digest.newsletter_id,
        subscriptions__status=Subscription.Status.ACTIVE,
    )


def due() -> Q:
    """Rows with no hold, or whose hold (the subscriber's local send time) has passed."""
    return Q(not_before__isnull=True) | Q(not_before__lte=timezone.now())


def claim(delivery_ids: list[int], claimer: str) -> list[Claimed]:
    """Atomically take the claimable rows among `delivery_ids` under a lease.

    Claimable: queued, due, under the attempt cap, of a digest that is sending. Rows another
    worker holds are skipped, never waited for.
    """
    now = timezone.now()
    candidates = Delivery.objects.filter(
        due(), pk__in=delivery_ids, status=Delivery.Status.QUEUED, digest__status=Digest.Status.SENDING,
        attempts__lt=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS,
    )
    taken = {"from_status": Delivery.Status.QUEUED, "to_status": Delivery.Status.SENDING, "claimed_by": claimer,
             "message_id": "", "lease_until": now + timedelta(seconds=settings.NEWSDIGEST_DELIVERY_LEASE_SECONDS),
             "attempts": F("attempts") + 1}
    if db_connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            pks = list(candidates.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True))
            Delivery.objects.filter(pk__in=pks).transition(**taken)
    else:
        # SQLite serialises writers: the status guard in this one UPDATE is the compare-and-set.
        candidates.transition(**taken)
    # Plain columns, not Delivery and Subscriber instances: building two model objects per row was a
    # measurable part of the send loop's CPU (bench/fanout/cpu.py).
    held = (Delivery.objects.filter(claimed_by=claimer, status=Delivery.Status.SENDING).order_by("pk")
            .values_list("pk", "digest_id", "subscriber_id", "attempts", "subscriber__email", "subscriber__name",
                         "subscriber__format"))
    return [Claimed(pk, digest_id, subscriber_id, attempts, Recipient(subscriber_id, email, name, format))
            for pk, digest_id, subscriber_id, attempts, email, name, format in held]


def finish(delivery: Delivery | Claimed, claimer: str, status: str, **fields) -> bool:
    """sending -> `status` for a row this worker still holds; False when its lease was taken over."""
    return bool(Delivery.objects.filter(pk=delivery.pk, claimed_by=claimer).transition(
        from_status=Delivery.Status.SENDING, to_status=status, **fields))


class SentMarks:
    """The send loop's `sent` marks: `finish(row, claimer, SENT, sent_at=now, ...)`, compiled once per batch
    and issued for each message right after the server's 250 (`send`); `settle` reads the outstanding reply
    and flags a row whose mark found it taken over (the lease lapsed and another worker claimed it).

    On PostgreSQL the mark goes out through libpq's asynchronous interface: the server runs and commits it
    as it arrives (autocommit; inside a transaction, with it), while this process goes on to the next
    message, and its reply is read before the connection's next statement. The duplicate window is the
    same as a synchronous mark's, since the UPDATE leaves at the same moment; only the wait for its reply
    overlaps the next SMTP exchange instead of adding to it (bench/fanout/run.py). Elsewhere (SQLite, an
    embedded database with no round trip) each mark runs at once on the batch's `cursor`.
    """

    def __init__(self, claimer: str, cursor: CursorWrapper | None = None):
        self.move = Delivery.row_transition(from_status=Delivery.Status.SENDING, to_status=Delivery.Status.SENT,
                                            match=("claimed_by",), fields=("sent_at", "lease_until", "last_error"),
                                            fixed={"claimed_by": claimer, "lease_until": None, "last_error": ""})
        self.cursor = cursor
        self.pgconn = None
        if db_connection.vendor == "postgresql":
            db_connection.ensure_connection()
            self.pgconn = db_connection.connection.pgconn
            # The statement with numbered parameters, sent with their text: binding them client-side
            # (psycopg's mogrify) cost more CPU than the rest of the mark. No prepared statement, so
            # nothing is kept in the session (transaction-pooling PgBouncer stays safe).
            numbers = iter(range(1, self.move.sql.count("%s") + 1))
            self.numbered = re.sub("%s", lambda _: f"${next(numbers)}", self.move.sql).encode()
        self.in_flight: int | None = None  # the row whose mark's reply is unread (libpq takes one at a time)
        self.lost: list[int] = []

    def send(self, pk: int) -> None:
        self.settle()
        now = timezone.now()
        if self.pgconn is None:
            if not self.move(pk, cursor=self.cursor, sent_at=now):
                self._flag(pk)
            return
        params = [_text(value) for value in self.move.statement(pk, sent_at=now)[1]]
        with db_connection.wrap_database_errors:
            self.pgconn.send_query_params(self.numbered, params)
            while self.pgconn.flush():  # the socket is non-blocking: wait until the whole statement is out
                select.select([], [self.pgconn.socket], [])
        self.in_flight = pk

    def settle(self) -> None:
        """Read the reply of the mark in flight, if any; must run before any other statement on the connection."""
        if self.in_flight is None:
            return
        pk, self.in_flight = self.in_flight, None
        rows, error = 0, None
        with db_connection.wrap_database_errors:
            while (result := self._next_result()) is not None:
                if result.status == ExecStatus.COMMAND_OK:
                    rows = result.command_tuples or 0
                else:
                    error = result
            if error is not None:
                raise psycopg.errors.error_from_result(error, encoding=db_connection.connection.info.encoding)
        if not rows:
            self._flag(pk)

    def _next_result(self) -> PGresult | None:
        while self.pgconn.is_busy():
            select.select([self.pgconn.socket], [], [])
            self.pgconn.consume_input()
        return self.pgconn.get_result()

    def _flag(self, pk: int) -> None:
        log.warning("delivery %s: sent after its lease was taken over; flagged", pk)
        Delivery.objects.filter(pk=pk).update(possible_duplicate=True)
        self.lost.append(pk)


def _text(value: object) -> bytes | None:
    """A parameter in PostgreSQL's text input format, for the few types a transition sets or matches."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat().encode()  # aware (USE_TZ): timestamptz reads the offset
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"no text form for a {type(value).__name__} parameter")


def release(rows: list[Claimed], claimer: str, reason: str, retry_in: float = 0.0) -> int:
    """Give rows back untried: the claim's attempt does not count; a cancelled digest's rows end skipped."""
    if not rows:
        return 0
    released = Delivery.objects.filter(pk__in=[d.pk for d in rows], claimed_by=claimer).transition(
        from_status=Delivery.Status.SENDING, to_status=Delivery.Status.QUEUED, claimed_by="", message_id="",
        attempts=F("attempts") - 1, last_error=reason,
        lease_until=timezone.now() + timedelta(seconds=retry_in) if retry_in else None)
    skip_cancelled(rows[0].digest_id)
    return released


def skip_cancelled(digest_id: int | None = None) -> None:
    """Rows a worker or a retry put back after their digest was cancelled end skipped."""
    cancelled = Digest.objects.filter(status=Digest.Status.CANCELLED)
    if digest_id is not None:
        cancelled = cancelled.filter(pk=digest_id)
    # Explicit digest ids, so the (digest, status) index is used: joined to the digests, the planner
    # scanned every queued row of a 1M-row send (bench/fanout/rows.py).
    ids = list(cancelled.values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        Delivery.objects.filter(digest_id__in=ids[start:start + 500]).transition(
            from_status=Delivery.Status.QUEUED, to_status=Delivery.Status.SKIPPED, last_error="digest cancelled",
            lease_until=None)


def drop_unwanted(rows: list[Claimed], digest: Digest, claimer: str, counts: dict) -> list[Claimed]:
    """Re-check inside the claim: an unsubscribe, bounce or pause since the fan-out wins."""
    state = dict(eligible_subscribers(digest).filter(pk__in=[d.subscriber_id for d in rows])
                 .values_list("pk", "paused"))
    keep = []
    for delivery in rows:
        if delivery.subscriber_id not in state:
            finish(delivery, claimer, Delivery.Status.SKIPPED, lease_until=None, last_error="no longer subscribed")
            counts["skipped"] += 1
        elif state[delivery.subscriber_id]:
            finish(delivery, claimer, Delivery.Status.SKIPPED, lease_until=None, last_error="subscriber paused")
            counts["skipped"] += 1
        else:
            keep.append(delivery)
    return keep


def finish_if_done(digest_id: int, *, fanned_out: bool = False) -> bool:
    """sending -> sent once no row is queued or in flight.

    A digest with no rows at all is only finished by its fan-out (`fanned_out`): before
    that, "no open rows" means "not created yet", not "all sent".
    """
    rows = Delivery.objects.filter(digest_id=digest_id)
    if rows.filter(status__in=OPEN_ROWS).exists() or not (fanned_out or rows.exists()):
        return False
    return bool(Digest.transition(digest_id, from_status=Digest.Status.SENDING, to_status=Digest.Status.SENT,
                                  sent_at=timezone.now()))
