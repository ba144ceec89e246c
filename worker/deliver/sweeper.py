"""The sweeper (`sweep`, every NEWSDIGEST_DELIVERY_SWEEP_SECONDS) and the send's progress report.

The database decides who sends what; the broker only nudges. The sweeper puts back rows whose worker
died, fails rows stuck at the attempt cap, redoes a fan-out whose start message was lost, re-nudges
rows whose Celery message was lost and closes finished digests.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, F, Q, TextField, Value, When
from django.db.models.functions import Concat
from django.utils import timezone

from .. import jobs
from ..broker import waiting_messages
from ..models import Delivery, Digest
from .claims import FINAL_ROWS, finish_if_done, skip_cancelled
from .fanout import SendRefused, fan_out, nudge, nudge_lease, publish_batches

log = logging.getLogger("newsdigest.deliver")


def expired_leases_to_queue(now: datetime, lease: datetime) -> int:
    """Rows a dead (or stalled) worker held go back to the queue, already nudged with `lease`.

    A row with its Message-ID written was in the SMTP conversation when its worker
    vanished: the server may have accepted it, so the re-send is flagged. The row is
    written once: moved, flagged and given the sweep's nudge lease in the same UPDATE
    (as lease-less rows, a nudge would write each again).
    """
    expired = Delivery.objects.filter(status=Delivery.Status.SENDING, lease_until__lt=now)
    in_flight = expired.exclude(message_id="")
    # One line however many rows (a dead worker can leave a whole batch): the report names them all.
    if flagged := in_flight.count():
        first = list(in_flight.values_list("pk", flat=True)[:10])
        log.warning("%s deliveries (%s%s) lost their worker mid-send; they may be delivered twice",
                    flagged, ", ".join(map(str, first)), ", ..." if flagged > len(first) else "")
    duplicate = Case(When(~Q(message_id=""), then=Value(True)), default=F("possible_duplicate"))
    failed = expired.filter(attempts__gte=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS).transition(
        from_status=Delivery.Status.SENDING, to_status=Delivery.Status.FAILED, lease_until=None,
        possible_duplicate=duplicate, last_error=_gave_up(Value("worker lost")))
    return failed + expired.transition(from_status=Delivery.Status.SENDING, to_status=Delivery.Status.QUEUED,
                                       claimed_by="", lease_until=lease, possible_duplicate=duplicate)


def _gave_up(reason: Value | F) -> Concat:
    prefix = Value(f"gave up after {settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS} attempts: ")
    return Concat(prefix, reason, output_field=TextField())


def sweep() -> list[list[int]]:
    """The periodic safety net; returns batches to publish.

    Re-queues expired leases, fails rows stuck at the attempt cap, redoes a fan-out whose
    start message was lost, re-nudges queued rows nobody picked up (at most
    NEWSDIGEST_DELIVERY_NUDGE_LIMIT a sweep, so a sweep's work does not grow with a backlog), and
    closes finished digests.
    """
    now = timezone.now()
    # One lease for the rows re-queued here and those the nudge picks: its listing publishes both.
    lease = nudge_lease(now)
    expired_leases_to_queue(now, lease)
    Delivery.objects.filter(attempts__gte=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS).transition(
        from_status=Delivery.Status.QUEUED, to_status=Delivery.Status.FAILED, lease_until=None,
        last_error=_gave_up(F("last_error")))
    batches = []
    stalled = now - timedelta(seconds=settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS)
    # Read once for the fan-out check and the finish check: nothing in between moves a digest out of sending.
    sending = list(Digest.objects.filter(status=Digest.Status.SENDING).values_list("pk", "send_started_at"))
    for digest_id, started in sending:
        # One index probe per sending digest (a handful), never a count or a join over the rows: as one
        # NOT EXISTS the planner chose a sequential scan of a 1M-row table (bench/fanout/rows.py).
        if started and started < stalled and not Delivery.objects.filter(digest_id=digest_id).exists():
            batches += fan_out(digest_id)
    batches += nudge(limit=settings.NEWSDIGEST_DELIVERY_NUDGE_LIMIT, sending=[pk for pk, _ in sending], lease=lease)
    for digest_id, _ in sending:
        finish_if_done(digest_id)
    skip_cancelled()
    return batches


def sweep_and_publish() -> int:
    """`sweep`, its batches published; returns how many rows they carry.

    A sweep that reached NEWSDIGEST_DELIVERY_NUDGE_LIMIT may have left lapsed rows behind. Lapsed rows
    with a broker holding less than a sweep's worth of messages are not a queue the workers are still
    working through: the broker lost them (a Redis restarted empty). Then the next sweep is queued at once,
    behind the batches just published, instead of NEWSDIGEST_DELIVERY_SWEEP_SECONDS later: the backlog
    drains at the workers' pace (each follow-up runs once they have taken what is ahead of it), and the
    chain stops when the broker has work waiting or nothing is left. Each sweep stays bounded.
    """
    batches = sweep()
    nudged = publish_batches(batches)
    limit = settings.NEWSDIGEST_DELIVERY_NUDGE_LIMIT
    if nudged >= limit:
        waiting = waiting_messages()
        # What was waiting before this sweep published: less than a sweep's worth means the workers are idle.
        if waiting is not None and (waiting - len(batches)) * settings.NEWSDIGEST_SEND_BATCH_SIZE < limit:
            jobs.enqueue(jobs.Job.SWEEP_DELIVERIES)
    return nudged


def progress(digest_id: int) -> dict[str, int]:
    counts = dict(Delivery.objects.filter(digest_id=digest_id).values_list("status")
                  .annotate(n=Count("pk")).values_list("status", "n"))
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in FINAL_ROWS)
    duplicates = Delivery.objects.filter(digest_id=digest_id, possible_duplicate=True).count()
    return {"total": total, "remaining": total - done, "possible_duplicates": duplicates,
            **{s: counts.get(s, 0) for s in Delivery.Status.values}}


def report(digest_id: int) -> dict:
    """progress plus the names behind the numbers: possible duplicates and permanent failures."""
    digest = Digest.objects.filter(pk=digest_id).values("status", "pause_reason", "consecutive_failures").first()
    if digest is None:
        raise SendRefused(f"no digest {digest_id}")
    rows = Delivery.objects.filter(digest_id=digest_id).select_related("subscriber").order_by("pk")
    return {
        "digest": digest_id, **digest, **progress(digest_id),
        "possible_duplicate_rows": [
            {"delivery": d.pk, "email": d.subscriber.email, "message_id": d.message_id, "status": d.status}
            for d in rows.filter(possible_duplicate=True)],
        "failed_rows": [{"delivery": d.pk, "email": d.subscriber.email, "error": d.last_error}
                        for d in rows.filter(status=Delivery.Status.FAILED)],
    }
