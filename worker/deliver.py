"""Deliver stage: one Delivery row per (digest, subscriber); rows are claimed, sent, finalised.

The database decides who sends what. Tasks only carry row ids, so a lost or
redelivered Celery message can neither lose nor double a send.
"""

import logging
import os
import smtplib
import socket
import uuid
from datetime import timedelta
from email.utils import formataddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import render
from .models import Delivery, Digest, Subscriber, Subscription, transition

log = logging.getLogger("newsdigest.deliver")


class SendRefused(Exception):
    """The digest is not in a state that may be sent (not approved, already sending...)."""


class DeliveryTransientError(Exception):
    """The mail server is unreachable or deferring; the batch should be retried later."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def eligible_subscribers(digest: Digest):
    return Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE,
        subscriptions__newsletter_id=digest.newsletter_id,
        subscriptions__status=Subscription.Status.ACTIVE,
    )


def message_id(digest: Digest, subscriber: Subscriber) -> str:
    """Deterministic, so a re-send after a crash carries the same id and can be deduplicated."""
    return f"<nd.{digest.pk}.{subscriber.pk}@{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>"


def _one_line(value: str) -> str:
    """Collapse CR/LF and other whitespace so no field can inject a header."""
    return " ".join(value.split())


def build_message(
    digest: Digest, subscriber: Subscriber, rendered: render.RenderedEmail, *, connection=None,
    test: bool = False,
) -> EmailMultiAlternatives:
    newsletter = digest.newsletter
    body = render.personalise(rendered, digest, subscriber)
    sender = formataddr((_one_line(newsletter.sender_name), newsletter.sender_email))
    recipient = formataddr((_one_line(subscriber.name), subscriber.email)) if subscriber.name else subscriber.email
    headers = {"Message-ID": message_id(digest, subscriber) if not test else None}
    if not test:
        unsubscribe = render.unsubscribe_url(subscriber, newsletter)
        token = render.unsubscribe_token(subscriber, newsletter)
        headers |= {
            "List-Id": f"{_one_line(newsletter.name)} <{newsletter.slug}.{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>",
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{settings.NEWSDIGEST_UNSUBSCRIBE_MAILTO}"
                                f"?subject=unsubscribe%20{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
        }
    message = EmailMultiAlternatives(
        subject=_one_line(digest.subject),
        body=body.text,
        from_email=sender,
        to=[recipient],
        reply_to=[newsletter.reply_to] if newsletter.reply_to else None,
        headers={k: v for k, v in headers.items() if v},
        connection=connection,
    )
    if subscriber.format == Subscriber.Format.HTML:
        message.attach_alternative(body.html, "text/html")
    return message


def start_send(digest_id: int) -> list[list[int]]:
    """approved -> sending, and one queued Delivery per eligible subscriber, in one transaction.

    Returns the row ids in batches, for the caller to hand to workers after commit.
    """
    with transaction.atomic():
        moved = transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.APPROVED,
                           to_status=Digest.Status.SENDING, send_started_at=timezone.now())
        if not moved:
            status = Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first()
            raise SendRefused(f"digest {digest_id} is {status or 'missing'}; only an approved digest can be sent")
        digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
        render.ensure_rendered(digest)
        Delivery.objects.bulk_create(
            [Delivery(digest=digest, subscriber_id=pk) for pk in
             eligible_subscribers(digest).values_list("pk", flat=True)],
            ignore_conflicts=True, batch_size=1000,
        )
    return queued_batches(digest_id)


def queued_batches(digest_id: int) -> list[list[int]]:
    ids = list(Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.QUEUED)
               .order_by("pk").values_list("pk", flat=True))
    size = settings.NEWSDIGEST_SEND_BATCH_SIZE
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def claim(delivery_ids: list[int], claimer: str) -> list[Delivery]:
    """Atomically take the queued rows among `delivery_ids`; rows another worker holds are left."""
    lease = timezone.now() + timedelta(seconds=settings.NEWSDIGEST_DELIVERY_LEASE_SECONDS)
    Delivery.objects.filter(
        pk__in=delivery_ids, status=Delivery.Status.QUEUED, digest__status=Digest.Status.SENDING,
    ).update(status=Delivery.Status.SENDING, claimed_by=claimer, lease_until=lease, attempts=F("attempts") + 1)
    return list(Delivery.objects.filter(pk__in=delivery_ids, claimed_by=claimer, status=Delivery.Status.SENDING)
                .select_related("subscriber").order_by("pk"))


def _still_wanted(delivery: Delivery) -> bool:
    return eligible_subscribers(delivery.digest).filter(pk=delivery.subscriber_id).exists()


def _finish(delivery: Delivery, claimer: str, status: str, **fields) -> None:
    Delivery.objects.filter(pk=delivery.pk, claimed_by=claimer, status=Delivery.Status.SENDING).update(
        status=status, lease_until=None, **fields)


def send_batch(delivery_ids: list[int]) -> dict[str, int]:
    """Send the claimable rows of one batch over one SMTP connection.

    A 5xx answer fails the row for good; a 4xx or a dropped connection puts it back in
    the queue and raises DeliveryTransientError so the task retries the batch later.
    """
    claimer = worker_name()
    rows = claim(delivery_ids, claimer)
    counts = {"sent": 0, "failed": 0, "skipped": 0, "requeued": 0}
    if not rows:
        return counts
    digest = Digest.objects.select_related("newsletter").get(pk=rows[0].digest_id)
    rendered = render.ensure_rendered(digest)
    transient: Exception | None = None
    with get_connection() as connection:
        for delivery in rows:
            delivery.digest = digest
            if transient is not None:
                _finish(delivery, claimer, Delivery.Status.QUEUED, last_error=str(transient))
                counts["requeued"] += 1
                continue
            if not _still_wanted(delivery):
                _finish(delivery, claimer, Delivery.Status.SKIPPED, last_error="no longer subscribed")
                counts["skipped"] += 1
                continue
            message = build_message(digest, delivery.subscriber, rendered, connection=connection)
            Delivery.objects.filter(pk=delivery.pk).update(message_id=message.extra_headers["Message-ID"])
            try:
                message.send()
            except smtplib.SMTPResponseException as exc:
                reply = f"{exc.smtp_code} {exc.smtp_error!r}"
                if exc.smtp_code >= 500 or delivery.attempts >= settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS:
                    _finish(delivery, claimer, Delivery.Status.FAILED, last_error=reply)
                    counts["failed"] += 1
                else:
                    _finish(delivery, claimer, Delivery.Status.QUEUED, last_error=reply)
                    counts["requeued"] += 1
                    transient = exc
            except (smtplib.SMTPException, OSError) as exc:
                _finish(delivery, claimer, Delivery.Status.QUEUED, last_error=f"{type(exc).__name__}: {exc}")
                counts["requeued"] += 1
                transient = exc
            else:
                _finish(delivery, claimer, Delivery.Status.SENT, sent_at=timezone.now(), last_error="")
                counts["sent"] += 1
    finish_if_done(digest.pk)
    if transient is not None:
        raise DeliveryTransientError(str(transient)) from transient
    return counts


def finish_if_done(digest_id: int) -> bool:
    """sending -> sent once no row is queued or in flight."""
    open_rows = Delivery.objects.filter(digest_id=digest_id,
                                        status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING])
    if open_rows.exists():
        return False
    return bool(transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.SENDING,
                           to_status=Digest.Status.SENT, sent_at=timezone.now()))


def progress(digest_id: int) -> dict[str, int]:
    counts = dict(Delivery.objects.filter(digest_id=digest_id).values_list("status")
                  .annotate(n=Count("pk")).values_list("status", "n"))
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in (Delivery.Status.SENT, Delivery.Status.FAILED,
                                            Delivery.Status.SKIPPED, Delivery.Status.BOUNCED))
    return {"total": total, "remaining": total - done, **{s: counts.get(s, 0) for s in Delivery.Status.values}}


def expired_leases_to_queue() -> int:
    """Rows a dead worker held: back to the queue, marked as possibly already delivered."""
    return Delivery.objects.filter(
        Q(status=Delivery.Status.SENDING) & Q(lease_until__lt=timezone.now())
    ).update(status=Delivery.Status.QUEUED, claimed_by="", lease_until=None, possible_duplicate=True)


def send_test(digest: Digest, email: str) -> None:
    """An editor's preview copy: real rendering, no list headers, no Delivery row."""
    rendered = render.ensure_rendered(digest)
    probe = Subscriber(email=email, name="", format=Subscriber.Format.HTML, pk=0)
    build_message(digest, probe, rendered, test=True).send()


def sending_digest_ids() -> list[int]:
    return list(Digest.objects.filter(status=Digest.Status.SENDING).values_list("pk", flat=True))
