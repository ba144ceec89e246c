"""Subscriber state changes shared by the web pages, the CLI and the mail handlers.

Sign-up is double opt-in: `subscribe` only records a pending subscription and mails a
signed, expiring confirmation link; `confirm` activates it. Nothing here ever brings back
an address that bounced or complained, and no answer reveals whether an address was known.
"""

import codecs
import csv
import hashlib
import ipaddress
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import time
from functools import cache, lru_cache
from itertools import islice
from typing import IO, TypeVar

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from . import jobs, render, tokens
from .models import Newsletter, Subscriber, Subscription, SuppressionEvent
from .ratelimit import TokenBucket

TOKEN_MAX_AGE = None  # unsubscribe links in old emails must keep working
SUPPRESSED = (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED)
UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.IGNORECASE)
T = TypeVar("T")


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
    # email_key is the database's lower(); `email=` covers addresses it lower-cases differently from Python.
    return Subscriber.objects.filter(Q(email_key=email.lower()) | Q(email=email)).first()


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
        # Asking again after an unsubscribe is a new opt-in; it takes effect only once confirmed. Guarded, not
        # decided on the row read above: an unsubscribe or a confirmation committed since then is not undone.
        Subscription.transition(subscription.pk, from_status=Subscription.Status.UNSUBSCRIBED,
                                to_status=Subscription.Status.PENDING)
    # After the commit (outside the block above): the link must find the rows.
    jobs.enqueue(jobs.Job.SEND_CONFIRMATION, subscriber.pk, newsletter.pk)
    return True


def _unsubscribed_marker(subscription: Subscription | None) -> str:
    return subscription.unsubscribed_at.isoformat() if subscription and subscription.unsubscribed_at else ""


def confirm_token(subscriber: Subscriber, newsletter: Newsletter) -> str:
    """Signed, expiring; it also names the subscription's last unsubscribe, so a link mailed before an
    unsubscribe cannot undo it (only a link from a new sign-up can)."""
    subscription = Subscription.objects.filter(subscriber=subscriber, newsletter=newsletter).first()
    return tokens.dumps(tokens.Purpose.CONFIRM,
                        {"s": subscriber.pk, "n": newsletter.pk, "u": _unsubscribed_marker(subscription)})


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
    """Raises tokens.ExpiredToken, tokens.BadToken or Subscription.DoesNotExist."""
    data = tokens.loads(tokens.Purpose.CONFIRM, token, max_age=settings.NEWSDIGEST_CONFIRM_MAX_AGE)
    subscription = Subscription.objects.select_related("newsletter", "subscriber").get(
        subscriber_id=data["s"], newsletter_id=data["n"])
    if subscription.status == Subscription.Status.UNSUBSCRIBED or \
            data.get("u", "") != _unsubscribed_marker(subscription):
        # Unsubscribed after this link was mailed: the link is spent.
        raise tokens.BadToken("confirmation link older than the last unsubscribe")
    return subscription


def confirm(token: str) -> Subscription:
    """pending -> active for the subscriber and the subscription; idempotent; suppressed stays suppressed."""
    subscription = subscription_for_confirm_token(token)
    with transaction.atomic():
        Subscriber.transition(subscription.subscriber_id,
                              from_status=[Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED],
                              to_status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now())
        if not Subscriber.objects.filter(pk=subscription.subscriber_id, status__in=SUPPRESSED).exists():
            # Guarded: an unsubscribe that lands between the token check and here wins. unsubscribed_at is
            # kept: it is what tells links mailed before that unsubscribe from links mailed after it.
            Subscription.objects.filter(pk=subscription.pk, unsubscribed_at=subscription.unsubscribed_at).transition(
                from_status=Subscription.Status.PENDING, to_status=Subscription.Status.ACTIVE)
    subscription.refresh_from_db()
    subscription.subscriber.refresh_from_db()
    return subscription


# --- unsubscribe and preferences -------------------------------------------------------


def unsubscribe(token: str, via: str = "link") -> Subscription:
    """Idempotent: a second click, or a link scanner's POST after the user's, changes nothing."""
    subscription = subscription_for_token(token)
    changed = Subscription.transition(subscription.pk,
                                      from_status=[Subscription.Status.PENDING, Subscription.Status.ACTIVE],
                                      to_status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now())
    if changed:
        SuppressionEvent.objects.create(subscriber=subscription.subscriber, email=subscription.subscriber.email,
                                        kind=SuppressionEvent.Kind.UNSUBSCRIBE,
                                        detail=f"{subscription.newsletter.slug} via {via}")
    subscription.refresh_from_db()
    return subscription


def subscription_for_token(token: str) -> Subscription:
    data = tokens.loads(tokens.Purpose.UNSUBSCRIBE, token, max_age=TOKEN_MAX_AGE)
    return Subscription.objects.select_related("newsletter", "subscriber").get(
        subscriber_id=data["s"], newsletter_id=data["n"])


def unsubscribe_by_mail(subject: str) -> Subscription | None:
    """A mail to NEWSDIGEST_UNSUBSCRIBE_MAILTO with "unsubscribe <token>" in its subject
    (the List-Unsubscribe mailto: of every digest). None if the subject carries no valid token."""
    for candidate in UNSUBSCRIBE_SUBJECT.findall(subject or ""):
        try:
            return unsubscribe(candidate, via="mail")
        except (tokens.BadToken, Subscription.DoesNotExist):
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
                # The signed preferences link proves the address; no second opt-in needed. Guarded: a
                # sign-up that reopened it (pending) meanwhile keeps its own confirmation.
                Subscription.transition(subscription.pk, from_status=Subscription.Status.UNSUBSCRIBED,
                                        to_status=Subscription.Status.ACTIVE, unsubscribed_at=None)


# --- CSV import / export ---------------------------------------------------------------

CSV_FIELDS = ["email", "name", "timezone", "status", "newsletters"]


@dataclass
class ImportReport:
    added: int = 0
    subscribed: int = 0
    unchanged: int = 0
    awaiting_confirmation: int = 0  # of `unchanged`: pending from an earlier import or sign-up, not mailed again
    rejected: list[tuple[int, str]] = field(default_factory=list)


class ImportRefused(InvalidSubscriber):
    """The whole file is refused (size, encoding, CSV syntax, row cap); nothing was written."""


IMPORT_CHUNK = 1000  # rows per round trip: a few queries per chunk, so the cost per row stays constant


def import_csv(stream: IO[bytes], newsletter: Newsletter, *, confirmed: bool,
               progress: Callable[[Iterator], Iterator] | None = None) -> ImportReport:
    """Rows with an `email` column (optional `name`, `timezone`); the header row is required.

    --confirmed makes new and pending rows active (the list owner vouches for the opt-in);
    without it, subscriptions this import creates get a confirmation mail, after the commit;
    a subscription already pending gets none (re-importing a file mails nobody twice).
    Unsubscribed, bounced or complained addresses are never re-activated.

    The binary stream is read line by line, never whole, and everything is written in one
    transaction, IMPORT_CHUNK rows at a time: a file refused halfway (a byte that is not UTF-8,
    broken CSV, over NEWSDIGEST_IMPORT_MAX_BYTES/_ROWS) raises ImportRefused naming the line,
    and the database is left as it was. Bad rows are only reported (`rejected`), never fatal.
    """
    report = ImportReport()
    reader = csv.reader(_csv_lines(stream))
    header = [column.strip().lower() for column in _next_row(reader) or []]
    if "email" not in header:
        raise InvalidSubscriber("the CSV needs a header row with an 'email' column")
    rows = _valid_rows(reader, header, report)
    if progress is not None:
        rows = progress(rows)
    to_mail: list[int] = []
    with transaction.atomic():
        for chunk in _chunks(rows, IMPORT_CHUNK):
            to_mail += _import_chunk(chunk, newsletter, confirmed, report)
    for pks in _chunks(to_mail, IMPORT_CHUNK):
        for subscriber in Subscriber.objects.filter(pk__in=pks).order_by("pk"):
            send_confirmation(subscriber, newsletter)
    return report


def _csv_lines(stream: IO[bytes]) -> Iterator[str]:
    """Decoded lines with their line ends (what csv.reader wants), under the byte and line caps."""
    cap, longest = settings.NEWSDIGEST_IMPORT_MAX_BYTES, settings.NEWSDIGEST_IMPORT_MAX_LINE_BYTES
    total = number = 0
    while raw := stream.readline(longest + 1):
        number += 1
        total += len(raw)
        if total > cap:
            raise ImportRefused(f"line {number}: the file is larger than {cap} bytes "
                                "(NEWSDIGEST_IMPORT_MAX_BYTES); nothing was imported")
        if len(raw) > longest and not raw.endswith(b"\n"):
            raise ImportRefused(f"line {number} is longer than {longest} bytes "
                                "(NEWSDIGEST_IMPORT_MAX_LINE_BYTES); nothing was imported")
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportRefused(f"line {number}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not "
                                "UTF-8; nothing was imported (save the file as UTF-8)") from None


def _next_row(reader) -> list[str] | None:
    start = reader.line_num + 1
    try:
        return next(reader, None)
    except csv.Error as exc:
        where = f"line {start}" if reader.line_num <= start else f"lines {start}-{reader.line_num}"
        raise ImportRefused(f"{where}: broken CSV: {exc} (an unclosed quote?); nothing was imported") from None


def _valid_rows(reader, header: list[str], report: ImportReport) -> Iterator[tuple[str, str, str]]:
    """(email, name, timezone) of each acceptable row; the others go to report.rejected with their line."""
    column = {name: index for index, name in reversed(list(enumerate(header)))}
    seen: dict[str, int] = {}
    count, cap = 0, settings.NEWSDIGEST_IMPORT_MAX_ROWS
    while (row := _next_row(reader)) is not None:
        if not row:
            continue  # a blank line
        count += 1
        if count > cap:
            raise ImportRefused(f"line {reader.line_num}: more than {cap} rows (NEWSDIGEST_IMPORT_MAX_ROWS); "
                                "nothing was imported; split the file")
        line = reader.line_num
        value = {name: row[index] if index < len(row) else "" for name, index in column.items()}
        try:
            email = normalise_email(value["email"])
            name, tz = clean_name(value.get("name", "")), clean_timezone(value.get("timezone", ""))
        except InvalidSubscriber as exc:
            report.rejected.append((line, str(exc)))
            continue
        if (key := email.lower()) in seen:
            report.rejected.append((line, f"duplicate of line {seen[key]} ({email})"))
            continue
        seen[key] = line
        yield email, name, tz


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _known(emails: list[str]) -> dict[str, tuple[int, str]]:
    """{lower-cased address: (pk, status)} of the subscribers among `emails`: one query on the unique
    indexes (email_key, and email itself for addresses the database lower-cases differently)."""
    match = Q(email_key__in=[email.lower() for email in emails])
    if unusual := [email for email in emails if not email.isascii()]:
        match |= Q(email__in=unusual)
    rows = Subscriber.objects.filter(match).values_list("pk", "email", "status")
    return {email.lower(): (pk, status) for pk, email, status in rows}


def _import_chunk(chunk: list[tuple[str, str, str]], newsletter: Newsletter, confirmed: bool,
                  report: ImportReport) -> list[int]:
    """Write one chunk of valid rows; returns the subscribers to mail a confirmation (after the commit)."""
    now = timezone.now()
    known = _known([email for email, _, _ in chunk])
    new = [Subscriber(email=email, name=name, timezone=tz,
                      status=Subscriber.Status.ACTIVE if confirmed else Subscriber.Status.PENDING,
                      confirmed_at=now if confirmed else None)
           for email, name, tz in chunk if email.lower() not in known]
    if new:
        try:
            with transaction.atomic():
                Subscriber.objects.bulk_create(new)
            added = {s.email.lower(): (s.pk, s.status) for s in new if s.pk is not None}
            if len(added) != len(new):  # the database returned no ids (SQLite before 3.35)
                added = _known([s.email for s in new])
        except IntegrityError:
            # A sign-up committed since the look-up: keep its row and take the rest.
            Subscriber.objects.bulk_create(new, ignore_conflicts=True)
            added = {k: v for k, v in _known([s.email for s in new]).items() if k not in known}
        known |= added
        report.added += len(added)
    people = [pk for pk, status in known.values() if status not in (*SUPPRESSED, Subscriber.Status.UNSUBSCRIBED)]
    report.unchanged += len(known) - len(people)
    have = dict(Subscription.objects.filter(newsletter=newsletter, subscriber_id__in=people)
                .values_list("subscriber_id", "status"))
    fresh = [pk for pk in people if pk not in have]
    Subscription.objects.bulk_create(
        [Subscription(subscriber_id=pk, newsletter=newsletter,
                      status=Subscription.Status.ACTIVE if confirmed else Subscription.Status.PENDING)
         for pk in fresh], ignore_conflicts=True)
    report.subscribed += len(fresh)
    pending = [pk for pk, status in have.items() if status == Subscription.Status.PENDING]
    if not confirmed:
        report.unchanged += len(have)
        report.awaiting_confirmation += len(pending)
        return fresh
    Subscriber.objects.filter(pk__in=people).transition(
        from_status=Subscriber.Status.PENDING, to_status=Subscriber.Status.ACTIVE, confirmed_at=now)
    Subscription.objects.filter(newsletter=newsletter, subscriber_id__in=pending).transition(
        from_status=Subscription.Status.PENDING, to_status=Subscription.Status.ACTIVE)
    report.subscribed += len(pending)
    report.unchanged += len(have) - len(pending)
    return []


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
