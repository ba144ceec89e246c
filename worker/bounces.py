"""Bounces, complaints and inbound mail: what suppresses an address.

Three ways in, one function (`suppress`):
- ESP tracking webhooks through django-anymail: `path("anymail/", include("anymail.urls"))`
  gives e.g. /anymail/postmark/tracking/, /anymail/mailgun/tracking/ (configure the
  ESP's webhook secret as ANYMAIL_WEBHOOK_SECRET); `on_tracking` receives the events.
- SMTP bounces (DSN, RFC 3464 multipart/report) and RFC 8058 mailto unsubscribes, read by
  `newsdigest inbound` from stdin. Wiring with Postfix, in /etc/aliases (then `newaliases`):

      unsubscribe: "|/srv/newsdigest/bin/inbound"
      bounces:     "|/srv/newsdigest/bin/inbound"

  where /srv/newsdigest/bin/inbound is a script that exports the production environment
  (DATABASE_URL, SECRET_KEY, ...) and execs `/srv/newsdigest/.venv/bin/newsdigest inbound`.
  Set NEWSDIGEST_UNSUBSCRIBE_MAILTO to the unsubscribe address and point the envelope
  sender (Return-Path) of digests at the bounce address. The command exits 0 for mail it
  does not understand, so Postfix does not bounce the bounce; a temporary failure (database
  down) exits 75 (EX_TEMPFAIL) and Postfix retries later.

Hard bounces and complaints suppress at once; soft bounces after
NEWSDIGEST_SOFT_BOUNCE_LIMIT of them.
"""

import logging
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.dispatch import receiver

from . import subscribers
from .models import Delivery, Subscriber, Subscription, SuppressionEvent, transition

log = logging.getLogger("newsdigest.bounces")
Kind = SuppressionEvent.Kind


def suppress(email: str, kind: str, *, detail: str = "", message_id: str = "") -> SuppressionEvent:
    """Record the event and act on it; always records, even for an address we do not know."""
    email = email.strip()
    with transaction.atomic():
        subscriber = Subscriber.objects.filter(email__iexact=email).first()
        event = SuppressionEvent.objects.create(subscriber=subscriber, email=email, kind=kind,
                                                detail=detail[:5000], message_id=message_id[:300])
        if subscriber is None:
            return event
        people = Subscriber.objects.filter(pk=subscriber.pk)
        active_or_pending = [Subscriber.Status.ACTIVE, Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED]
        if kind == Kind.HARD_BOUNCE:
            transition(people, from_status=active_or_pending, to_status=Subscriber.Status.BOUNCED)
        elif kind == Kind.COMPLAINT:
            transition(people, from_status=[*active_or_pending, Subscriber.Status.BOUNCED],
                       to_status=Subscriber.Status.COMPLAINED)
        elif kind == Kind.SOFT_BOUNCE:
            people.update(soft_bounces=F("soft_bounces") + 1)
            transition(people.filter(soft_bounces__gte=settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT),
                       from_status=active_or_pending, to_status=Subscriber.Status.BOUNCED)
        elif kind == Kind.UNSUBSCRIBE:
            subscriber.subscriptions.exclude(status=Subscription.Status.UNSUBSCRIBED).update(
                status=Subscription.Status.UNSUBSCRIBED)
        if message_id and kind in (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE):
            Delivery.objects.filter(message_id=message_id, subscriber=subscriber,
                                    status=Delivery.Status.SENT).update(status=Delivery.Status.BOUNCED,
                                                                        last_error=detail[:2000])
    return event


# --- ESP webhooks (anymail) ---------------------------------------------------------------

ANYMAIL_KINDS = {
    "bounced": Kind.HARD_BOUNCE,
    "rejected": Kind.HARD_BOUNCE,
    "complained": Kind.COMPLAINT,
    "deferred": Kind.SOFT_BOUNCE,
    "unsubscribed": Kind.UNSUBSCRIBE,
}


@receiver(tracking, dispatch_uid="newsdigest-tracking")
def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    kind = ANYMAIL_KINDS.get(event.event_type)
    if kind is None or not event.recipient:
        return
    detail = " ".join(filter(None, [esp_name, event.event_type, event.reject_reason, event.description,
                                    event.mta_response]))
    suppress(event.recipient, kind, detail=detail, message_id=_message_id(event))


def _message_id(event: AnymailTrackingEvent) -> str:
    """Our own Message-ID if the ESP passes the original headers back; its message id otherwise."""
    headers = (event.esp_event or {}).get("headers") if isinstance(event.esp_event, dict) else None
    if isinstance(headers, dict) and (mid := headers.get("Message-ID") or headers.get("message-id")):
        return str(mid)
    return str(event.message_id or "")


# --- DSN (RFC 3464) --------------------------------------------------------------------


@dataclass(frozen=True)
class Bounce:
    email: str
    kind: str
    status: str
    diagnostic: str
    message_id: str


def parse_dsn(message: Message) -> list[Bounce]:
    """The failed recipients of a delivery status notification; [] for anything else.

    `Action: delayed` is not a bounce; `failed` with a 5.x.x status is hard, 4.x.x soft.
    """
    if message.get_content_type() != "multipart/report" or \
            message.get_param("report-type", "").lower() != "delivery-status":
        return []
    status_part = next((p for p in message.walk() if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        return []
    original = _original_message_id(message)
    blocks = status_part.get_payload()
    bounces = []
    for block in blocks[1:] if isinstance(blocks, list) else []:
        action = str(block.get("Action", "")).strip().lower()
        if action != "failed":
            continue
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        email = recipient.partition(";")[2].strip() or recipient.strip()
        status = str(block.get("Status", "")).strip()
        if not email:
            continue
        kind = Kind.SOFT_BOUNCE if status.startswith("4") else Kind.HARD_BOUNCE
        bounces.append(Bounce(email=email, kind=kind, status=status,
                              diagnostic=" ".join(str(block.get("Diagnostic-Code", "")).split()),
                              message_id=original))
    return bounces


def _original_message_id(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) else inner
            return str(inner.get("Message-ID", "")).strip()
        if part.get_content_type() == "text/rfc822-headers":
            headers = message_from_bytes(part.get_payload(decode=True) or b"", policy=policy.default)
            return str(headers.get("Message-ID", "")).strip()
    return ""


def handle_inbound(raw: bytes) -> str:
    """One inbound RFC 822 message: a DSN suppresses its failed recipients, a mail to the
    unsubscribe address unsubscribes; returns a line saying what was done."""
    message = message_from_bytes(raw, policy=policy.compat32)
    if bounces := parse_dsn(message):
        for bounce in bounces:
            suppress(bounce.email, bounce.kind, detail=f"DSN {bounce.status} {bounce.diagnostic}".strip(),
                     message_id=bounce.message_id)
        return "; ".join(f"{b.kind} {b.email} ({b.status})" for b in bounces)
    subject = str(message.get("Subject", ""))
    if subscription := subscribers.unsubscribe_by_mail(subject):
        return f"unsubscribed {subscription.subscriber.email} from {subscription.newsletter.slug}"
    log.info("inbound message ignored: not a DSN and no unsubscribe token (subject %r)", subject[:200])
    return "ignored: not a bounce and no unsubscribe token"
