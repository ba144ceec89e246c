"""Ops actions on a digest, one function each, shared by the ops console, `newsdigest ops` and the
token API, so all three refuse the same things with the same words and leave the same audit trail.

Every refusal is a deliver.SendRefused carrying the reason.
"""

from datetime import timedelta
from functools import partial

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from . import audit, deliver, jobs
from .models import Delivery, Digest, transition

Actor = User | AnonymousUser | None

ACTIONS = ("send", "pause", "resume", "cancel", "retry-failed")
# The send rate is measured over this trailing window.
RATE_WINDOW = timedelta(seconds=60)


def _who(user: Actor) -> str:
    return user.get_username() if user is not None and user.is_authenticated else "the command line"


def send(digest_id: int, user: Actor = None) -> str:
    """approved -> sending now (a clear refusal otherwise); the fan-out runs on the workers."""
    deliver.start_or_stay_approved(digest_id, partial(jobs.enqueue, jobs.Job.START_SEND))
    audit.record(digest_id, user, "send started")
    return f"digest {digest_id}: sending"


def pause(digest_id: int, user: Actor = None) -> str:
    deliver.pause(digest_id, reason=f"paused by {_who(user)}")
    audit.record(digest_id, user, "paused")
    return f"digest {digest_id}: paused"


def resume(digest_id: int, user: Actor = None) -> str:
    batches = deliver.resume(digest_id)
    audit.record(digest_id, user, "resumed")
    deliver.publish_batches(batches)
    return f"digest {digest_id}: sending again"


def cancel(digest_id: int, user: Actor = None) -> str:
    skipped = deliver.cancel(digest_id)
    audit.record(digest_id, user, "cancelled", skipped=skipped)
    return f"digest {digest_id}: cancelled, {skipped} deliveries skipped"


def retry_failed(digest_id: int, user: Actor = None) -> str:
    """failed rows -> queued with a fresh attempt budget, then nudged to the workers.

    A digest already `sent` is reopened (sent -> sending) for the retry; it closes again when the
    retried rows are final. Refused for drafts, cancelled digests and when nothing failed.
    """
    with transaction.atomic():
        transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.SENT,
                   to_status=Digest.Status.SENDING, sent_at=None)
        status = Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first()
        if status not in (Digest.Status.SENDING, Digest.Status.PAUSED):
            raise deliver.SendRefused(f"digest {digest_id} is {status or 'missing'}; "
                                      f"only a sending, paused or sent digest has deliveries to retry")
        requeued = Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.FAILED).update(
            status=Delivery.Status.QUEUED, attempts=0, lease_until=None, claimed_by="")
        if not requeued:
            # Rolls the reopening back too: a sent digest with nothing to retry stays sent.
            raise deliver.SendRefused(f"digest {digest_id} has no failed deliveries to retry")
        audit.record(digest_id, user, "retried failed deliveries", requeued=requeued)
    deliver.publish_batches(deliver.nudge(digest_id))
    return f"digest {digest_id}: {requeued} failed deliveries queued again"


def perform(action: str, digest_id: int, user: Actor = None) -> str:
    handlers = {"send": send, "pause": pause, "resume": resume, "cancel": cancel, "retry-failed": retry_failed}
    if action not in handlers:
        raise deliver.SendRefused(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    return handlers[action](digest_id, user)


def status(digest_id: int) -> dict:
    """deliver.report plus the recent send rate and percentage, for the console's polling and the API."""
    report = deliver.report(digest_id)
    since = timezone.now() - RATE_WINDOW
    recent = Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.SENT, sent_at__gte=since).count()
    total = report["total"]
    done = total - report["remaining"]
    return {**report, "rate_per_minute": round(recent * 60 / RATE_WINDOW.total_seconds(), 1),
            "percent": round(100 * done / total, 1) if total else (100.0 if report["status"] == "sent" else 0.0)}
