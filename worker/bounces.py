"""Bounces, complaints and inbound mail: what suppresses an address, and what pauses a send.

Three ways in:
- ESP tracking webhooks through django-anymail (`on_tracking`; the receivers and their credentials
  are wired in urls.py/settings.py);
- SMTP bounces and ARF complaints, and RFC 8058 mailto unsubscribes, read by `newsdigest inbound`
  from stdin (`handle_inbound`). Wiring with Postfix: set NEWSDIGEST_BOUNCE_ADDRESS (e.g.
  bounces@news.example) and `recipient_delimiter = +` in main.cf, then in /etc/aliases (then
  `newaliases`):

      unsubscribe: "|/srv/newsdigest/bin/inbound"
      bounces:     "|/srv/newsdigest/bin/inbound"

  where /srv/newsdigest/bin/inbound exports the production environment (DATABASE_URL,
  SECRET_KEY, ...) and execs `/srv/newsdigest/.venv/bin/newsdigest inbound`. Postfix passes the
  envelope recipient (the VERP address) in $ORIGINAL_RECIPIENT, which the command reads. It exits
  0 for mail it does not understand or refuses (so Postfix does not bounce the bounce) and 75
  (EX_TEMPFAIL) when the database is down, so Postfix retries later.

Trust: every digest goes out with envelope sender `bounces+<digest>-<subscriber>-<hmac>@domain`
(`return_path`), so a bounce names its delivery. A bounce or complaint is acted on only when it
names a delivery this service sent: through that signed return path, or through the returned
original's Message-ID *and* the delivery's address among the failed ones. Then only that delivery's
subscriber is touched, however many addresses the message lists. Anything else changes nothing.

What each class does (`suppress`): hard bounces and complaints suppress at once; soft bounces
after NEWSDIGEST_SOFT_BOUNCE_LIMIT of them within NEWSDIGEST_SOFT_BOUNCE_WINDOW_DAYS; policy
bounces (the receiver refused *us*) never suppress, are logged as errors (alert) and, with hard
bounces, count towards the digest's bounce rate, which with the complaint rate auto-pauses a send
(`check_rates`).
"""

import logging
import re
from datetime import timedelta

from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from . import audit, bounce_reports, subscribers
from .models import AuditEntry, Delivery, Digest, Subscriber, Subscription, SuppressionEvent, transition

log = logging.getLogger("newsdigest.bounces")
Kind = SuppressionEvent.Kind
KIND_OF_CLASS = {
    bounce_reports.HARD: Kind.HARD_BOUNCE,
    bounce_reports.SOFT: Kind.SOFT_BOUNCE,
    bounce_reports.POLICY: Kind.POLICY_BOUNCE,
    bounce_reports.COMPLAINT: Kind.COMPLAINT,
}
BOUNCES = (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.POLICY_BOUNCE)
# Deliveries a bounce may refer to: accepted by the next server (or already marked bounced).
ANSWERABLE = (Delivery.Status.SENT, Delivery.Status.BOUNCED)


# --- VERP return path -----------------------------------------------------------------------------

VERP_SALT = "newsdigest.verp"


def _verp_signature(digest_id: int, subscriber_id: int) -> str:
    # Lower-case hex: some servers fold the case of the local part they send the bounce to.
    return salted_hmac(VERP_SALT, f"{digest_id}.{subscriber_id}").hexdigest()[:16]


def return_path(digest_id: int, subscriber_id: int) -> str:
    """The envelope sender naming one delivery; '' when NEWSDIGEST_BOUNCE_ADDRESS is not set."""
    local, at, domain = settings.NEWSDIGEST_BOUNCE_ADDRESS.partition("@")
    if not at:
        return ""
    return f"{local}+{digest_id}-{subscriber_id}-{_verp_signature(digest_id, subscriber_id)}@{domain}"


def delivery_of_return_path(address: str) -> tuple[int, int] | None:
    """(digest id, subscriber id) from a return path we signed; None for anything else."""
    local, at, domain = settings.NEWSDIGEST_BOUNCE_ADDRESS.lower().partition("@")
    if not at:
        return None
    token = r"([1-9]\d{0,17})-([1-9]\d{0,17})-([0-9a-f]{16})"
    match = re.fullmatch(f"{re.escape(local)}\\+{token}@{re.escape(domain)}", address.strip().strip("<>").lower())
    if match is None:
        return None
    digest_id, subscriber_id = int(match[1]), int(match[2])
    if not constant_time_compare(match[3], _verp_signature(digest_id, subscriber_id)):
        return None
    return digest_id, subscriber_id


# --- acting on an event ---------------------------------------------------------------------------

def suppress(email: str, kind: str, *, detail: str = "", message_id: str = "", status: str = "",
             delivery: Delivery | None = None) -> SuppressionEvent:
    """Record the event and act on it; always records, even for an address we do not know."""
    email = email.strip()
    with transaction.atomic():
        subscriber = (delivery.subscriber if delivery is not None
                      else Subscriber.objects.filter(email__iexact=email).first())
        event = SuppressionEvent.objects.create(
            subscriber=subscriber, email=email, kind=kind, detail=detail[:5000], message_id=message_id[:300],
            status=status[:20], delivery=delivery, digest_id=delivery.digest_id if delivery else None)
        if subscriber is None:
            return event
        people = Subscriber.objects.filter(pk=subscriber.pk)
        reachable = [Subscriber.Status.ACTIVE, Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED]
        if kind == Kind.HARD_BOUNCE:
            transition(people, from_status=reachable, to_status=Subscriber.Status.BOUNCED)
        elif kind == Kind.COMPLAINT:
            transition(people, from_status=[*reachable, Subscriber.Status.BOUNCED],
                       to_status=Subscriber.Status.COMPLAINED)
        elif kind == Kind.SOFT_BOUNCE:
            people.update(soft_bounces=F("soft_bounces") + 1)
            since = timezone.now() - timedelta(days=settings.NEWSDIGEST_SOFT_BOUNCE_WINDOW_DAYS)
            # An operator's un-suppress starts the count afresh.
            if (cleared := _unsuppressed_at(subscriber)) is not None:
                since = max(since, cleared)
            window = subscriber.suppression_events.filter(kind=Kind.SOFT_BOUNCE, created_at__gte=since)
            # One message failing softly twice (a retry, a second report) is one soft bounce.
            recent = (window.exclude(delivery=None).values("delivery_id").distinct().count()
                      + window.filter(delivery=None).count())
            if recent >= settings.NEWSDIGEST_SOFT_BOUNCE_LIMIT:
                transition(people, from_status=reachable, to_status=Subscriber.Status.BOUNCED)
        elif kind == Kind.POLICY_BOUNCE:
            log.error("policy bounce for %s (the receiver refused our mail, not the address): %s %s",
                      email, status, detail[:300])
        elif kind == Kind.UNSUBSCRIBE:
            subscriber.subscriptions.exclude(status=Subscription.Status.UNSUBSCRIBED).update(
                status=Subscription.Status.UNSUBSCRIBED)
        if kind in BOUNCES:
            rows = Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.SENT)
            rows = rows.filter(pk=delivery.pk) if delivery is not None else rows.filter(message_id=message_id or "-")
            rows.update(status=Delivery.Status.BOUNCED, last_error=f"{status} {detail}".strip()[:2000])
    if event.digest_id is not None and kind in (*BOUNCES, Kind.COMPLAINT):
        check_rates(event.digest_id)
    return event


def _unsuppressed_at(subscriber: Subscriber):
    return (AuditEntry.objects.filter(action="unsuppressed", detail__email=subscriber.email)
            .order_by("-created_at").values_list("created_at", flat=True).first())


def unsuppress(email: str, user: User | AnonymousUser | None) -> str:
    """An operator's decision: a bounced or complained address receives mail again (audited)."""
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().filter(email__iexact=email.strip()).first()
        if subscriber is None:
            raise ValueError(f"no subscriber {email.strip()!r}")
        previous = subscriber.status
        if not transition(Subscriber.objects.filter(pk=subscriber.pk),
                          from_status=[Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED],
                          to_status=Subscriber.Status.ACTIVE, soft_bounces=0):
            raise ValueError(f"{subscriber.email} is {previous}, not suppressed")
        audit.record(None, user, "unsuppressed", email=subscriber.email, was=previous)
    return f"{subscriber.email}: {previous} -> active"


# --- protecting the sender ------------------------------------------------------------------------

def digest_rates(digest_id: int) -> dict[str, float | int]:
    """Sent messages and the share of them that hard-bounced, policy-bounced or drew a complaint
    (each subscriber counted once per kind)."""
    sent = Delivery.objects.filter(digest_id=digest_id, status__in=ANSWERABLE).count()
    events = SuppressionEvent.objects.filter(digest_id=digest_id)
    counts = {kind: events.filter(kind=kind).values("subscriber_id").distinct().count()
              for kind in (Kind.HARD_BOUNCE, Kind.POLICY_BOUNCE, Kind.COMPLAINT)}
    return {
        "sent": sent,
        "hard_bounces": counts[Kind.HARD_BOUNCE],
        "policy_bounces": counts[Kind.POLICY_BOUNCE],
        "complaints": counts[Kind.COMPLAINT],
        "bounce_rate": (counts[Kind.HARD_BOUNCE] + counts[Kind.POLICY_BOUNCE]) / sent if sent else 0.0,
        "hard_bounce_rate": counts[Kind.HARD_BOUNCE] / sent if sent else 0.0,
        "complaint_rate": counts[Kind.COMPLAINT] / sent if sent else 0.0,
    }


def rates_line(digest_id: int) -> str:
    """One line for the ops console."""
    r = digest_rates(digest_id)
    return (f"Of {r['sent']} messages sent: {r['hard_bounces']} hard bounces ({r['hard_bounce_rate']:.2%}), "
            f"{r['policy_bounces']} policy bounces (hard+policy {r['bounce_rate']:.2%}, pause over "
            f"{settings.NEWSDIGEST_PAUSE_BOUNCE_RATE:.2%}), {r['complaints']} complaints ({r['complaint_rate']:.2%}, "
            f"pause over {settings.NEWSDIGEST_PAUSE_COMPLAINT_RATE:.2%}).")


def check_rates(digest_id: int) -> str:
    """Pause a sending digest whose bounce or complaint rate passed its threshold; returns the reason
    ('' when it goes on). Rates count only once NEWSDIGEST_PAUSE_MIN_SENT messages went out."""
    rates = digest_rates(digest_id)
    if rates["sent"] < settings.NEWSDIGEST_PAUSE_MIN_SENT:
        return ""
    reason = ""
    for name, threshold, what in (("complaint_rate", settings.NEWSDIGEST_PAUSE_COMPLAINT_RATE, "complaint"),
                                  ("bounce_rate", settings.NEWSDIGEST_PAUSE_BOUNCE_RATE, "hard+policy bounce")):
        if threshold and rates[name] > threshold:
            reason = (f"auto-paused: {what} rate {rates[name]:.2%} over {threshold:.2%} "
                      f"after {rates['sent']} messages")
            break
    if not reason or not Digest.objects.filter(pk=digest_id, status=Digest.Status.SENDING).exists():
        return ""
    # The guarded sending -> paused of deliver.pause, written here: deliver imports this module (for
    # the return path and refusals), so calling deliver would make an import cycle.
    if not transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.SENDING,
                      to_status=Digest.Status.PAUSED, pause_reason=reason):
        return ""  # paused, finished or cancelled meanwhile
    audit.record(digest_id, None, "auto-paused", reason=reason)
    log.error("digest %s %s", digest_id, reason)
    return reason


# --- inbound mail ---------------------------------------------------------------------------------

def _delivery_for(report: bounce_reports.Report, envelope_recipient: str) -> Delivery | None:
    """The delivery this report is about, or None when it names none we sent (then it is ignored)."""
    for address in (envelope_recipient, *report.addressed_to):
        if ids := delivery_of_return_path(address):
            return (Delivery.objects.select_related("subscriber")
                    .filter(digest_id=ids[0], subscriber_id=ids[1], status__in=ANSWERABLE).first())
    if not report.message_ids:
        return None
    # Our Message-IDs are deterministic, so one alone does not prove the report is genuine: the
    # delivery's own address must be among those reported as failed.
    failed = {f.email for f in report.failures}
    return next((d for d in Delivery.objects.select_related("subscriber")
                 .filter(message_id__in=report.message_ids[:20], status__in=ANSWERABLE)
                 if d.subscriber.email.lower() in failed), None)


def handle_inbound(raw: bytes, envelope_recipient: str = "") -> str:
    """One inbound RFC 822 message; returns a line saying what was done (mail too large or too
    deeply nested to read is refused unread, with a line saying so)."""
    try:
        report = bounce_reports.read(raw)
    except bounce_reports.Refused as exc:
        log.warning("inbound message refused: %s", exc)
        return f"ignored: {exc}"
    if report.kind == "none":
        subject = report.subject
        if subscription := subscribers.unsubscribe_by_mail(subject):
            return f"unsubscribed {subscription.subscriber.email} from {subscription.newsletter.slug}"
        log.info("inbound message ignored (%s; subject %r)", report.note, subject[:200])
        return f"ignored: {report.note}, no unsubscribe token"
    delivery = _delivery_for(report, envelope_recipient)
    if delivery is None:
        log.warning("inbound %s ignored: it refers to no message this service sent (%d addresses listed)",
                    report.kind, len(report.failures))
        return (f"ignored: {report.kind} that refers to no message this service sent "
                f"({len(report.failures)} addresses listed, none suppressed)")
    email = delivery.subscriber.email
    failure = next((f for f in report.failures if f.email == email.lower()), None)
    if failure is None:
        # Matched by the signed return path: the server rewrote or left out the address.
        failure = report.failures[0] if report.failures else bounce_reports.Failure(
            email, bounce_reports.COMPLAINT if report.kind == "complaint" else bounce_reports.SOFT)
    if failure.klass == bounce_reports.DELAYED:
        return f"delayed {email} ({failure.status or 'no status'}): no action"
    kind = KIND_OF_CLASS[failure.klass]
    event = suppress(email, kind, detail=f"{report.note}: {failure.diagnostic}".strip(": "),
                     message_id=delivery.message_id, status=failure.status, delivery=delivery)
    return f"{event.kind} {email} ({failure.status or report.note})"


def record_refusal(delivery: Delivery, reply: str) -> SuppressionEvent | None:
    """A receiving server refused the recipient during our own SMTP conversation (sending straight to
    its MX): no report will follow, so the reply is classified like one. Hard suppresses at once, soft
    counts towards the limit, policy never suppresses."""
    klass = bounce_reports.classify(bounce_reports.status_in(reply), reply)
    if klass not in KIND_OF_CLASS:
        return None
    return suppress(delivery.subscriber.email, KIND_OF_CLASS[klass], detail=reply,
                    message_id=delivery.message_id, status=bounce_reports.status_in(reply), delivery=delivery)


# --- ESP webhooks (anymail) -----------------------------------------------------------------------

# anymail's reject_reason for "bounced"/"rejected" events -> our class (None: classify the MTA text).
REJECT_REASON_CLASS = {
    "invalid": bounce_reports.HARD,
    "bounced": None,
    "timed_out": bounce_reports.SOFT,
    "blocked": bounce_reports.POLICY,
    "spam": bounce_reports.POLICY,
    "unsubscribed": bounce_reports.HARD,
    "other": None,
}


def tracking_class(event: AnymailTrackingEvent) -> str | None:
    """The class of an ESP event; None for events that are not failures (opened, deferred, ...)."""
    if event.event_type == "complained":
        return bounce_reports.COMPLAINT
    if event.event_type == "unsubscribed":
        return "unsubscribe"
    if event.event_type not in ("bounced", "rejected"):
        return None
    text = " ".join(filter(None, [event.mta_response, event.description]))
    klass = REJECT_REASON_CLASS.get(event.reject_reason or "other")
    if klass is None:
        klass = bounce_reports.classify(bounce_reports.status_in(text), text) if text else bounce_reports.HARD
    return klass


@receiver(tracking, dispatch_uid="newsdigest-tracking")
def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """An ESP event (the receiver authenticated the ESP): the same classes as inbound mail, matched to
    the delivery by our Message-ID when the ESP passes it back, else to the recipient's latest one."""
    klass = tracking_class(event)
    if klass is None or not event.recipient:
        return
    email = bounce_reports.clean_address(event.recipient) or event.recipient.strip().lower()
    detail = " ".join(filter(None, [esp_name, event.event_type, event.reject_reason, event.description,
                                    event.mta_response]))
    if klass == "unsubscribe":
        suppress(email, Kind.UNSUBSCRIBE, detail=detail)
        return
    message_id = _message_id(event)
    deliveries = Delivery.objects.select_related("subscriber").filter(
        subscriber__email__iexact=email, status__in=ANSWERABLE)
    delivery = (deliveries.filter(message_id=message_id).first() if message_id else None) or \
        deliveries.order_by("-sent_at", "-pk").first()
    suppress(email, KIND_OF_CLASS[klass], detail=detail, message_id=message_id,
             status=bounce_reports.status_in(event.mta_response or ""), delivery=delivery)


def _message_id(event: AnymailTrackingEvent) -> str:
    """Our own Message-ID if the ESP passes the original headers back; its message id otherwise."""
    headers = (event.esp_event or {}).get("headers") if isinstance(event.esp_event, dict) else None
    if isinstance(headers, dict) and (mid := headers.get("Message-ID") or headers.get("message-id")):
        return str(mid)
    return str(event.message_id or "")
