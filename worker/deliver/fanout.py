"""Starting a send: approved -> sending, one queued Delivery row per eligible subscriber, nudges.

Also the operator's pause, resume and cancel of a send. `lease_until` of a *queued* row is the time
until which a Celery message for it is believed to be on its way (or, for a row held until the
subscriber's send time, that time); after that the sweeper publishes a new one.
"""

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as clock_time
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import kombu.exceptions
import redis
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from .. import jobs, render
from ..broker import BrokerUnavailable, broker_setting
from ..models import Delivery, Digest
from .claims import due, eligible_subscribers, finish_if_done
from .sending import one_line

log = logging.getLogger("newsdigest.deliver")

# What publishing a task raises when the broker does not answer (kombu wraps the transport's errors;
# BrokerUnavailable is the CLI's fast-fail check).
PUBLISH_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, OSError, BrokerUnavailable)


class SendRefused(Exception):
    """The digest is not in a state that may be sent (not approved, already sending...)."""


def begin_send(digest_id: int) -> None:
    """approved -> sending, synchronously, so a second concurrent caller gets a clear refusal."""
    moved = Digest.transition(digest_id, from_status=Digest.Status.APPROVED, to_status=Digest.Status.SENDING,
                              send_started_at=timezone.now(), consecutive_failures=0, pause_reason="")
    if not moved:
        status = Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first()
        if status in (Digest.Status.SENDING, Digest.Status.PAUSED):
            raise SendRefused(f"digest {digest_id} is already {status}; a digest is sent once "
                              f"(see `newsdigest send {digest_id} --status`)")
        raise SendRefused(f"digest {digest_id} is {status or 'missing'}; only an approved digest can be sent")


def start_or_stay_approved(digest_id: int, publish: Callable[[int], object]) -> None:
    """begin_send, then `publish` the fan-out (the start_send task); when the broker cannot take it, the
    digest goes back to approved and SendRefused says why, so nothing sits in `sending` with no rows.

    The way back is guarded by "no delivery row yet": if the start message did get through and a
    worker already fanned out, the digest is left sending and the sweeper carries it on.
    """
    begin_send(digest_id)
    try:
        publish(digest_id)
    except PUBLISH_ERRORS as exc:
        undone = Digest.objects.filter(~Exists(Delivery.objects.filter(digest_id=OuterRef("pk"))),
                                       pk=digest_id).transition(
            from_status=Digest.Status.SENDING, to_status=Digest.Status.APPROVED, send_started_at=None)
        if undone:
            raise SendRefused(f"digest {digest_id} not started, still approved: the broker did not take the "
                              f"task ({one_line(str(exc))[:200]}); check {broker_setting()}") from None
        log.warning("digest %s: publishing its start failed after the fan-out began; the sweeper continues it",
                    digest_id)


def forget_nudge(delivery_ids: list[int]) -> None:
    """Rows whose send_batch message could not be published: the next sweep publishes them again
    (instead of waiting out NEWSDIGEST_DELIVERY_NUDGE_SECONDS for a message that never left)."""
    for start in range(0, len(delivery_ids), 500):  # SQLite's bound-parameter limit
        Delivery.objects.filter(pk__in=delivery_ids[start:start + 500], status=Delivery.Status.QUEUED).update(
            lease_until=None)


def publish_batches(batches: list[list[int]]) -> int:
    """One send_batch job per batch, published once the rows it names are committed."""
    if batches:
        transaction.on_commit(lambda: _publish(batches))
    return sum(map(len, batches))


def _publish(batches: list[list[int]]) -> None:
    for index, batch in enumerate(batches):
        try:
            jobs.enqueue(jobs.Job.SEND_BATCH, batch)
        except PUBLISH_ERRORS:
            # This and the later batches go back to the sweeper at once, not after the nudge window.
            forget_nudge([pk for rest in batches[index:] for pk in rest])
            raise


def fan_out(digest_id: int) -> list[list[int]]:
    """One queued Delivery per eligible subscriber, created in one transaction, exactly once.

    Accepts an approved digest (moving it to sending) or one already sending; running it
    twice (a redelivered start message, the sweeper) creates nothing new. Returns the
    batches of row ids to publish once this has committed.
    """
    lease = None
    with transaction.atomic():
        Digest.transition(digest_id, from_status=Digest.Status.APPROVED, to_status=Digest.Status.SENDING,
                          send_started_at=timezone.now())
        digest = Digest.objects.select_for_update().select_related("newsletter").filter(pk=digest_id).first()
        if digest is None or digest.status != Digest.Status.SENDING:
            return []
        if not Delivery.objects.filter(digest_id=digest_id).exists():
            render.ensure_rendered(digest)
            started = time.monotonic()
            lease = nudge_lease(timezone.now())
            created = _create_rows(digest, lease)
            log.info("digest %s: %s deliveries created in %.1f s", digest_id, created, time.monotonic() - started)
    # The new rows were inserted already nudged, so the nudge only lists them (with any row gone stale).
    batches = nudge(digest_id, lease=lease)
    finish_if_done(digest_id, fanned_out=True)
    return batches


FAN_OUT_CHUNK = 2000


def _create_rows(digest: Digest, lease: datetime) -> int:
    """The queued rows of a fan-out in memory that does not grow with the list, nudged with `lease`.

    Subscribers without a preferred send time (most of a list) are copied by the database itself
    (INSERT ... SELECT); the others need their release time computed from their own clock, so they
    stream through in chunks. Each row is written once, its nudge lease included: inserted lease-less
    and then nudged, every row of a 1M-row send left a dead version and dead index entries that the
    next sweeps walked until a vacuum (bench/fanout/rows.py).
    """
    now = timezone.now()
    immediate = eligible_subscribers(digest).filter(send_time__isnull=True).values(sid=F("pk"))
    select, params = immediate.query.sql_with_params()
    table, fields = Delivery._meta.db_table, Delivery._meta
    columns = [fields.get_field(name).column for name in
               ("digest", "subscriber", "status", "attempts", "message_id", "last_error", "claimed_by",
                "possible_duplicate", "created_at", "lease_until")]
    # In the order of `columns`; the datetimes as the ORM stores them (SQLite compares them as text).
    values = [digest.pk, Delivery.Status.QUEUED, 0, "", "", "", False,
              *(fields.get_field(name).get_db_prep_save(value, db_connection)
                for name, value in (("created_at", now), ("lease_until", lease)))]
    quote = db_connection.ops.quote_name
    # "WHERE true" lets SQLite tell ON CONFLICT from a join constraint after a SELECT.
    sql = (f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) "
           f"SELECT %s, eligible.sid, %s, %s, %s, %s, %s, %s, %s, %s FROM ({select}) eligible WHERE true "
           f"ON CONFLICT DO NOTHING")
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [*values, *params])
        created = cursor.rowcount
    zone = render.newsletter_zone(digest.newsletter)
    timed = (eligible_subscribers(digest).filter(send_time__isnull=False)
             .values_list("pk", "send_time", "timezone").iterator(chunk_size=FAN_OUT_CHUNK))
    while chunk := list(islice(timed, FAN_OUT_CHUNK)):
        releases = [subscriber_release(send_time, tz_name, zone, now) for _, send_time, tz_name in chunk]
        # A held row wants no message before its release: leased until then, the sweeper's nudge finds it
        # when that lease lapses, instead of stepping over it (lease-less but not due) on every sweep.
        created += len(Delivery.objects.bulk_create(
            [Delivery(digest_id=digest.pk, subscriber_id=pk, created_at=now, not_before=release,
                      lease_until=release or lease)
             for (pk, _, _), release in zip(chunk, releases, strict=True)], ignore_conflicts=True))
    return created


def subscriber_release(send_time: clock_time | None, tz_name: str, fallback: ZoneInfo,
                       now: datetime) -> datetime | None:
    """When a subscriber who chose `send_time` on their own clock gets a digest whose send starts `now`.

    Today at that local time while it is still ahead; at once when it has passed or none is set,
    so a digest is never held into the next day, where it would meet the next one. An unknown
    zone name falls back to the newsletter's zone rather than losing the send.
    """
    if send_time is None:
        return None
    try:
        zone = ZoneInfo(tz_name) if tz_name else fallback
    except (ZoneInfoNotFoundError, ValueError):
        zone = fallback
    local_now = now.astimezone(zone)
    # Through UTC and back, so a time in the spring-forward gap lands on the real clock after it.
    release = datetime.combine(local_now.date(), send_time, tzinfo=zone).astimezone(ZoneInfo("UTC"))
    return release if release > now else None


def nudge_lease(now: datetime) -> datetime:
    """The lease a nudge gives its rows. The random microseconds keep two concurrent nudges apart; if one
    overwrites the other's lease, its rows are simply published by it instead."""
    return now + timedelta(seconds=settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS,
                           microseconds=-random.randrange(1_000_000))


def nudge(digest_id: int | None = None, *, limit: int | None = None, sending: list[int] | None = None,
          lease: datetime | None = None) -> list[list[int]]:
    """Queued, due rows with no message believed in flight: mark them nudged and return them in batches.

    Rows of `digest_id`, or of every sending digest (`sending`: their ids when the caller has just read
    them). At most `limit` rows (the sweeper's bound), never-nudged rows first, then the oldest lapses;
    the others wait for the next call. Batches never mix digests. The caller publishes one send_batch
    per batch. `lease`: a nudge_lease the caller already gave rows of its own (the sweeper's re-queued
    rows), listed and returned with these.
    """
    now = timezone.now()
    if sending is None:
        digests = Digest.objects.filter(status=Digest.Status.SENDING)
        if digest_id is not None:
            digests = digests.filter(pk=digest_id)
        sending = list(digests.values_list("pk", flat=True))
    if not sending:
        return []
    # Explicit digest ids rather than a join: joined to the digests, the planner misjudged how many rows
    # a LIMIT needs and sorted the whole backlog (bench/fanout/rows.py).
    rows = Delivery.objects.filter(due(), status=Delivery.Status.QUEUED, digest_id__in=sending)
    # The rows are marked by one UPDATE, then the rows carrying this very lease are listed (by index): a
    # fixed number of statements whatever the list size.
    lease = lease or nudge_lease(now)
    if limit is None:
        stale = rows.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        Delivery.objects.filter(pk__in=stale.values("pk")).update(lease_until=lease)
    else:
        # The status again: a row claimed since it was picked keeps its worker's lease.
        Delivery.objects.filter(pk__in=_oldest_stale(rows, now, limit), status=Delivery.Status.QUEUED).update(
            lease_until=lease)
    nudged = Delivery.objects.filter(status=Delivery.Status.QUEUED, lease_until=lease)
    size = settings.NEWSDIGEST_SEND_BATCH_SIZE
    batches: list[list[int]] = []
    current_digest = None
    for digest, pk in nudged.order_by("digest_id", "pk").values_list("digest_id", "pk").iterator(chunk_size=5000):
        if digest != current_digest or len(batches[-1]) >= size:
            batches.append([])
            current_digest = digest
        batches[-1].append(pk)
    return batches


def _oldest_stale(rows: QuerySet[Delivery], now: datetime, limit: int) -> list[int]:
    """Up to `limit` ids among `rows` due a nudge: never nudged first, then the oldest lapses.

    Two ranges of the (status, lease_until) index, each read in index order under a LIMIT, so the scan
    stops after the rows it needs (as one `IS NULL OR < now` the planner can only collect them all, a
    BitmapOr). The ids come back here rather than feeding the UPDATE as a subquery: with the statistics
    of a nearly finished send, PostgreSQL planned `id IN (SELECT ... LIMIT)` as a nested loop that ran
    the subquery again for every queued row (1.3 s at 1M rows, bench/fanout/rows.py).
    """
    picked: list[int] = []
    # Both ordered by the lease, the order of that index, even the NULL range (where it changes nothing):
    # unordered, with the statistics of a nearly finished send, it was read through the (status, attempts)
    # index, every queued entry of which, dead ones included, had to be looked at (bench/fanout/rows.py).
    for stale in (Q(lease_until__isnull=True), Q(lease_until__lt=now)):
        if len(picked) < limit:
            picked += rows.filter(stale).order_by("lease_until").values_list("pk", flat=True)[:limit - len(picked)]
    return picked


def pause(digest_id: int, reason: str = "paused by an operator") -> None:
    if not Digest.transition(digest_id, from_status=Digest.Status.SENDING, to_status=Digest.Status.PAUSED,
                             pause_reason=reason):
        raise SendRefused(f"digest {digest_id} is {_status(digest_id)}; only a sending digest can be paused")


def resume(digest_id: int) -> list[list[int]]:
    """paused -> sending; returns the queued rows in batches for the caller to publish."""
    if not Digest.transition(digest_id, from_status=Digest.Status.PAUSED, to_status=Digest.Status.SENDING,
                             pause_reason="", consecutive_failures=0):
        raise SendRefused(f"digest {digest_id} is {_status(digest_id)}; only a paused digest can be resumed")
    # Every queued row is due a message now, except held ones: those keep their release as their lease.
    Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.QUEUED).update(lease_until=F("not_before"))
    return nudge(digest_id)


def cancel(digest_id: int) -> int:
    """Stops a digest for good; rows not yet sent end `skipped`. Returns how many were skipped."""
    if not Digest.transition(digest_id, from_status=[Digest.Status.DRAFT, Digest.Status.APPROVED,
                                                     Digest.Status.SENDING, Digest.Status.PAUSED],
                             to_status=Digest.Status.CANCELLED):
        raise SendRefused(f"digest {digest_id} is {_status(digest_id)}; it can no longer be cancelled")
    return Delivery.objects.filter(digest_id=digest_id).transition(
        from_status=Delivery.Status.QUEUED, to_status=Delivery.Status.SKIPPED, last_error="digest cancelled",
        lease_until=None)


def _status(digest_id: int) -> str:
    return Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first() or "missing"
