"""Subscriber state changes shared by the web pages, the CLI and the mail handlers.

Sign-up is double opt-in: `subscribe` only records a pending subscription and mails a
signed, expiring confirmation link; `confirm` activates it. Nothing here ever brings back
an address that bounced or complained, and no answer reveals whether an address was known.
"""

import csv
import hashlib
import ipaddress
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, field
from datetime import time
from functools import cache, lru_cache
from typing import IO

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from . import render
from .models import Newsletter, Subscriber, Subscription, SuppressionEvent, transition
from .ratelimit import TokenBucket

TOKEN_MAX_AGE = None  # unsubscribe links in old emails must keep working
CONFIRM_SALT = "newsdigest.confirm"
SUPPRESSED = (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED)
UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.IGNORECASE)


class InvalidSubscriber(ValueError):
    """Bad input from a form, the API or a CSV row; the message says what is wrong."""


def normalise_email(raw: str) -> str:
    """Syntax check and normalisation (lower-cased domain, IDNA); no DNS lookups."""
    try:
        return validate_email((raw or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidSubscriber(f"invalid email address {raw!r}: {exc}") from None


# Bidirectional controls reorder what a reader sees (a name can display as something else); they are
# dropped. Other control characters (NUL, escapes) have no place in a name and are refused.
BIDI_CONTROLS = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                       "\u2066\u2067\u2068\u2069"))


def clean_name(raw: str) -> str:
    if "\r" in raw or "\n" in raw:
        raise InvalidSubscriber("the name contains a line break")
    raw = raw.translate(BIDI_CONTROLS)
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in raw):
        raise InvalidSubscriber("the name contains a control character")
    name = " ".join(raw.split())
    if len(name) > 200:
        raise InvalidSubscriber("the name is longer than 200 characters")
    return name


def clean_timezone(raw: str) -> str:
    raw = (raw or "").strip()
    if raw and raw not in _timezones():
        raise InvalidSubscriber(f"unknown time zone {raw!r}")
    return raw


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _find(email: str) -> Subscriber | None:
    return Subscriber.objects.filter(email__iexact=email).first()


# --- sign-up ---------------------------------------------------------------------------


def client_network(remote_addr: str, forwarded_for: str = "") -> str:
    """Who is asking, for rate limits: the client address as our own proxies saw it, and for IPv6 its
    /64 (one subscriber line gets a whole /64, so single addresses cost an attacker nothing).

    X-Forwarded-For is believed only for the NEWSDIGEST_TRUSTED_PROXY_COUNT hops our proxies appended
    (the rightmost ones); whatever a client wrote there itself is ignored.
    """
    address = remote_addr
    hops = settings.NEWSDIGEST_TRUSTED_PROXY_COUNT
    if hops > 0:
        chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        address = chain[-hops] if len(chain) >= hops else (chain[0] if chain else remote_addr)
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/{settings.NEWSDIGEST_SUBSCRIBE_IPV6_PREFIX}", strict=False))
    return str(ip)


@lru_cache(maxsize=4096)  # bounded: one entry per recent client network
def _ip_bucket(network: str) -> TokenBucket:
    per_hour = settings.NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR
    return TokenBucket(f"subscribe:ip:{network}", per_hour / 3600, capacity=per_hour)


@lru_cache(maxsize=4096)
def _address_bucket(email: str) -> TokenBucket:
    per_day = settings.NEWSDIGEST_CONFIRMATIONS_PER_ADDRESS_PER_DAY
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]  # no address in Redis keys
    return TokenBucket(f"subscribe:addr:{digest}", per_day / 86400, capacity=per_day)


def allow_signup_from(network: str) -> bool:
    """Per client network (see client_network), shared by every web process through Redis."""
    return settings.NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR <= 0 or _ip_bucket(network).try_acquire() == 0


def allow_confirmation_to(email: str) -> bool:
    """Per address, whoever asks: a victim gets a few confirmation mails a day, not one per request."""
    per_day = settings.NEWSDIGEST_CONFIRMATIONS_PER_ADDRESS_PER_DAY
    return per_day <= 0 or _address_bucket(email.lower()).try_acquire() == 0


def subscribe(newsletter: Newsletter, email: str, name: str = "", tz: str = "") -> bool:
    """Record a sign-up and queue a confirmation mail; idempotent. Returns whether a mail was queued.

    Raises InvalidSubscriber for bad input. An active subscriber gets no second mail, a
    suppressed (bounced/complained) address gets nothing at all, an address asked for too often
    gets nothing more today; callers answer the same either way. The mail goes out from a task after
    the response, so the answer takes as long for a new address as for a known one.
    """
    email, name, tz = normalise_email(email), clean_name(name), clean_timezone(tz)
    with transaction.atomic():
        subscriber = _find(email)
        if subscriber is None:
            subscriber = Subscriber.objects.create(email=email, name=name, timezone=tz)
        elif subscriber.status in SUPPRESSED:
            return False
        subscription, _ = Subscription.objects.get_or_create(subscriber=subscriber, newsletter=newsletter)
        if subscriber.status == Subscriber.Status.ACTIVE and subscription.status == Subscription.Status.ACTIVE:
            return False
        if not allow_confirmation_to(email):
            return False
        if subscription.status == Subscription.Status.UNSUBSCRIBED:
            # Asking again is a new opt-in; it takes effect only once confirmed.
            Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.PENDING)
    from . import tasks

    tasks.send_confirmation.delay(subscriber.pk, newsletter.pk)  # after the commit: the link must find the rows
    return True


def _unsubscribed_marker(subscription: Subscription | None) -> str:
    return subscription.unsubscribed_at.isoformat() if subscription and subscription.unsubscribed_at else ""


def confirm_token(subscriber: Subscriber, newsletter: Newsletter) -> str:
    """Signed, expiring; it also names the subscription's last unsubscribe, so a link mailed before an
    unsubscribe cannot undo it (only a link from a new sign-up can)."""
    subscription = Subscription.objects.filter(subscriber=subscriber, newsletter=newsletter).first()
    return signing.dumps({"s": subscriber.pk, "n": newsletter.pk, "u": _unsubscribed_marker(subscription)},
                         salt=CONFIRM_SALT, compress=True)


def confirm_url(subscriber: Subscriber, newsletter: Newsletter) -> str:
    return settings.SITE_URL + reverse("confirm", args=[confirm_token(subscriber, newsletter)])


def send_confirmation(subscriber: Subscriber, newsletter: Newsletter) -> None:
    hours = settings.NEWSDIGEST_CONFIRM_MAX_AGE // 3600
    body = (f"Someone, hopefully you, asked to receive {newsletter.name} at this address.\n\n"
            f"Confirm here (the link works for {hours} hours):\n{confirm_url(subscriber, newsletter)}\n\n"
            "If it was not you, ignore this email: nothing will be sent without confirmation.\n")
    EmailMessage(subject=f"Confirm your subscription to {' '.join(newsletter.name.split())}", body=body,
                 from_email=newsletter.sender_email, to=[subscriber.email]).send()


def subscription_for_confirm_token(token: str) -> Subscription:
    """Raises signing.SignatureExpired, signing.BadSignature or Subscription.DoesNotExist."""
    data = signing.loads(token, salt=CONFIRM_SALT, max_age=settings.NEWSDIGEST_CONFIRM_MAX_AGE)
    subscription = Subscription.objects.select_related("newsletter", "subscriber").get(
        subscriber_id=data["s"], newsletter_id=data["n"])
    if subscription.status == Subscription.Status.UNSUBSCRIBED or \
            data.get("u", "") != _unsubscribed_marker(subscription):
        # Unsubscribed after this link was mailed: the link is spent.
        raise signing.BadSignature("confirmation link older than the last unsubscribe")
    return subscription


def confirm(token: str) -> Subscription:
    """pending -> active for the subscriber and the subscription; idempotent; suppressed stays suppressed."""
    subscription = subscription_for_confirm_token(token)
    with transaction.atomic():
        Subscriber.objects.filter(pk=subscription.subscriber_id,
                                  status__in=[Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED]).update(
            status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now())
        if not Subscriber.objects.filter(pk=subscription.subscriber_id, status__in=SUPPRESSED).exists():
            # Guarded: an unsubscribe that lands between the token check and here wins. unsubscribed_at is
            # kept: it is what tells links mailed before that unsubscribe from links mailed after it.
            transition(Subscription.objects.filter(pk=subscription.pk, unsubscribed_at=subscription.unsubscribed_at),
                       from_status=Subscription.Status.PENDING, to_status=Subscription.Status.ACTIVE)
    subscription.refresh_from_db()
    subscription.subscriber.refresh_from_db()
    return subscription


# --- unsubscribe and preferences -------------------------------------------------------


def unsubscribe(token: str, via: str = "link") -> Subscription:
    """Idempotent: a second click, or a link scanner's POST after the user's, changes nothing."""
    subscription = subscription_for_token(token)
    changed = Subscription.objects.filter(pk=subscription.pk).exclude(
        status=Subscription.Status.UNSUBSCRIBED).update(
        status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now())
    if changed:
        SuppressionEvent.objects.create(subscriber=subscription.subscriber, email=subscription.subscriber.email,
                                        kind=SuppressionEvent.Kind.UNSUBSCRIBE,
                                        detail=f"{subscription.newsletter.slug} via {via}")
    subscription.refresh_from_db()
    return subscription


def subscription_for_token(token: str) -> Subscription:
    data = signing.loads(token, salt=render.UNSUBSCRIBE_SALT, max_age=TOKEN_MAX_AGE)
    return Subscription.objects.select_related("newsletter", "subscriber").get(
        subscriber_id=data["s"], newsletter_id=data["n"])


def unsubscribe_by_mail(subject: str) -> Subscription | None:
    """A mail to NEWSDIGEST_UNSUBSCRIBE_MAILTO with "unsubscribe <token>" in its subject
    (the List-Unsubscribe mailto: of every digest). None if the subject carries no valid token."""
    for candidate in UNSUBSCRIBE_SUBJECT.findall(subject or ""):
        try:
            return unsubscribe(candidate, via="mail")
        except (signing.BadSignature, Subscription.DoesNotExist):
            continue
    return None


def set_preferences(subscriber: Subscriber, *, fmt: str, send_time: str, paused: bool,
                    newsletter_ids: set[int]) -> None:
    """Raises InvalidSubscriber for an unknown format or a malformed time (HH:MM, blank = the newsletter's)."""
    if fmt not in Subscriber.Format.values:
        raise InvalidSubscriber(f"unknown format {fmt!r}")
    try:
        when = time.fromisoformat(send_time) if send_time.strip() else None
    except ValueError:
        raise InvalidSubscriber(f"send time {send_time!r} is not HH:MM") from None
    with transaction.atomic():
        Subscriber.objects.filter(pk=subscriber.pk).update(format=fmt, send_time=when, paused=paused)
        for subscription in subscriber.subscriptions.select_related("newsletter"):
            wanted = subscription.newsletter_id in newsletter_ids
            if not wanted and subscription.status != Subscription.Status.UNSUBSCRIBED:
                unsubscribe(render.unsubscribe_token(subscriber, subscription.newsletter), via="preferences")
            elif wanted and subscription.status == Subscription.Status.UNSUBSCRIBED:
                # The signed preferences link proves the address; no second opt-in needed.
                Subscription.objects.filter(pk=subscription.pk).update(
                    status=Subscription.Status.ACTIVE, unsubscribed_at=None)


# --- CSV import / export ---------------------------------------------------------------

CSV_FIELDS = ["email", "name", "timezone", "status", "newsletters"]


@dataclass
class ImportReport:
    added: int = 0
    subscribed: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def import_csv(stream: IO[str], newsletter: Newsletter, *, confirmed: bool) -> ImportReport:
    """Rows with an `email` column (optional `name`, `timezone`); the header row is required.

    --confirmed makes new and pending rows active (the list owner vouches for the opt-in);
    without it they get a confirmation mail. Unsubscribed, bounced or complained addresses
    are never re-activated.
    """
    report = ImportReport()
    reader = csv.DictReader(stream)
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise InvalidSubscriber("the CSV needs a header row with an 'email' column")
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items() if k}
        try:
            email = normalise_email(row.get("email", ""))
            name, tz = clean_name(row.get("name", "")), clean_timezone(row.get("timezone", ""))
        except InvalidSubscriber as exc:
            report.rejected.append((line, str(exc)))
            continue
        if email.lower() in seen:
            report.rejected.append((line, f"duplicate of line {seen[email.lower()]} ({email})"))
            continue
        seen[email.lower()] = line
        _import_row(report, newsletter, email, name, tz, confirmed)
    return report


def _import_row(report: ImportReport, newsletter: Newsletter, email: str, name: str, tz: str,
                confirmed: bool) -> None:
    with transaction.atomic():
        subscriber = _find(email)
        if subscriber is None:
            subscriber = Subscriber.objects.create(
                email=email, name=name, timezone=tz,
                status=Subscriber.Status.ACTIVE if confirmed else Subscriber.Status.PENDING,
                confirmed_at=timezone.now() if confirmed else None)
            report.added += 1
        elif subscriber.status in (*SUPPRESSED, Subscriber.Status.UNSUBSCRIBED):
            report.unchanged += 1
            return
        subscription, created = Subscription.objects.get_or_create(
            subscriber=subscriber, newsletter=newsletter,
            defaults={"status": Subscription.Status.ACTIVE if confirmed else Subscription.Status.PENDING})
        if subscription.status == Subscription.Status.UNSUBSCRIBED:
            report.unchanged += 1
            return
        if confirmed:
            Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING).update(
                status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now())
            moved = Subscription.objects.filter(pk=subscription.pk, status=Subscription.Status.PENDING).update(
                status=Subscription.Status.ACTIVE)
            report.subscribed += int(created or bool(moved))
            if not (created or moved):
                report.unchanged += 1
        elif subscription.status != Subscription.Status.PENDING:
            report.unchanged += 1
            return
    if not confirmed:
        send_confirmation(subscriber, newsletter)
        report.subscribed += 1


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (=HYPERLINK,
# =cmd|..., +/-/@ variants, or a tab/CR that hides the rest): prefixed with ' it is shown as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def export_csv(stream: IO[str], newsletter: Newsletter | None = None) -> int:
    """Every subscriber (or a newsletter's), with status and the newsletters they actively get."""
    writer = csv.writer(stream)
    writer.writerow(CSV_FIELDS)
    people = Subscriber.objects.order_by("email").prefetch_related("subscriptions__newsletter")
    if newsletter is not None:
        people = people.filter(subscriptions__newsletter=newsletter)
    count = 0
    for person in people.iterator(chunk_size=2000):
        active = sorted(s.newsletter.slug for s in person.subscriptions.all()
                        if s.status == Subscription.Status.ACTIVE)
        writer.writerow([spreadsheet_safe(cell) for cell in
                         (person.email, person.name, person.timezone, person.status, " ".join(active))])
        count += 1
    return count
