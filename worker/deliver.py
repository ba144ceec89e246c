"""Deliver stage: one Delivery row per (digest, subscriber); rows are claimed, sent, finalised.

The database decides who sends what; the broker only nudges. Tasks carry row ids, a
claim is a guarded UPDATE (or SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL) that
gives each row to one worker under a lease, and the sweeper (`sweep`, every minute)
puts back rows whose worker died and re-nudges rows whose Celery message was lost.

A row is marked in flight (its Message-ID written) before the SMTP conversation and
`sent` right after the server's 250, so the only possible double send is a crash in
between; the sweeper flags such rows `possible_duplicate` and the report names them.

`lease_until` of a *queued* row is the time until which a Celery message for it is
believed to be on its way; after that the sweeper publishes a new one.
"""

import logging
import os
import random
import smtplib
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.header import Header
from email.utils import formataddr, make_msgid, parseaddr
from functools import cache
from itertools import islice

import kombu.exceptions
import redis
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from . import bounces, jobs, render, schedule
from .broker import BrokerUnavailable, broker_setting
from .dkim import SignedEmailMessage
from .models import Delivery, Digest, Subscriber, Subscription, transition
from .ratelimit import TokenBucket

log = logging.getLogger("newsdigest.deliver")

# What publishing a task raises when the broker does not answer (kombu wraps the transport's errors;
# BrokerUnavailable is the CLI's fast-fail check).
PUBLISH_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, OSError, BrokerUnavailable)
OPEN_ROWS = (Delivery.Status.QUEUED, Delivery.Status.SENDING)
FINAL_ROWS = (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.SKIPPED, Delivery.Status.BOUNCED)


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
    """One subscriber's message; DKIM-signed at serialisation when a key is configured (worker.dkim).

    Every header value passes `_one_line`, and Django refuses any that still holds CR/LF; non-ASCII
    display names and subjects go out RFC 2047-encoded.
    """
    newsletter = digest.newsletter
    body = render.personalise(rendered, digest, subscriber, sent_at=None if test else timezone.now())
    sender = formataddr((_one_line(newsletter.sender_name), _one_line(newsletter.sender_email)))
    email = _one_line(subscriber.email)
    recipient = formataddr((_one_line(subscriber.name), email)) if _one_line(subscriber.name) else email
    domain = settings.NEWSDIGEST_MESSAGE_ID_DOMAIN
    headers = {"Message-ID": make_msgid("nd.test", domain=domain) if test else message_id(digest, subscriber)}
    if not test:
        unsubscribe = render.unsubscribe_url(subscriber, newsletter)
        token = render.unsubscribe_token(subscriber, newsletter)
        headers |= {
            "List-Id": f"{_phrase(newsletter.name)} <{newsletter.slug}.{domain}>",
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{settings.NEWSDIGEST_UNSUBSCRIBE_MAILTO}"
                                f"?subject=unsubscribe%20{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
        }
    message = SignedEmailMessage(
        subject=_one_line(digest.subject),
        body=body.text,
        from_email=sender,
        to=[recipient],
        reply_to=[_one_line(newsletter.reply_to)] if newsletter.reply_to else None,
        headers=headers,
        connection=connection,
    )
    if not test and (return_path := bounces.return_path(digest.pk, subscriber.pk)):
        message.return_path = return_path  # VERP envelope sender for SMTP; ESPs report bounces by webhook
    if subscriber.format == Subscriber.Format.HTML:
        message.attach_alternative(body.html, "text/html")
    return message


def _phrase(name: str) -> str:
    """A List-Id description (RFC 2919 phrase): quoted when ASCII, an encoded word otherwise."""
    name = _one_line(name)
    if not name.isascii():
        return _one_line(Header(name, "utf-8").encode())
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- starting a send ------------------------------------------------------------------


def begin_send(digest_id: int) -> None:
    """approved -> sending, synchronously, so a second concurrent caller gets a clear refusal."""
    moved = transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.APPROVED,
                       to_status=Digest.Status.SENDING, send_started_at=timezone.now(),
                       consecutive_failures=0, pause_reason="")
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
        undone = transition(Digest.objects.filter(~Exists(Delivery.objects.filter(digest_id=OuterRef("pk"))),
                                                  pk=digest_id),
                            from_status=Digest.Status.SENDING, to_status=Digest.Status.APPROVED,
                            send_started_at=None)
        if undone:
            raise SendRefused(f"digest {digest_id} not started, still approved: the broker did not take the "
                              f"task ({_one_line(str(exc))[:200]}); check {broker_setting()}") from None
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
    with transaction.atomic():
        transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.APPROVED,
                   to_status=Digest.Status.SENDING, send_started_at=timezone.now())
        digest = Digest.objects.select_for_update().select_related("newsletter").filter(pk=digest_id).first()
        if digest is None or digest.status != Digest.Status.SENDING:
            return []
        if not Delivery.objects.filter(digest_id=digest_id).exists():
            render.ensure_rendered(digest)
            started = time.monotonic()
            created = _create_rows(digest)
            log.info("digest %s: %s deliveries created in %.1f s", digest_id, created, time.monotonic() - started)
    batches = nudge(digest_id)
    finish_if_done(digest_id, fanned_out=True)
    return batches


FAN_OUT_CHUNK = 2000


def _create_rows(digest: Digest) -> int:
    """The queued rows of a fan-out in memory that does not grow with the list.

    Subscribers without a preferred send time (most of a list) are copied by the database itself
    (INSERT ... SELECT); the others need their release time computed from their own clock, so they
    stream through in chunks.
    """
    now = timezone.now()
    immediate = eligible_subscribers(digest).filter(send_time__isnull=True).values(sid=F("pk"))
    select, params = immediate.query.sql_with_params()
    table, fields = Delivery._meta.db_table, Delivery._meta
    columns = [fields.get_field(name).column for name in
               ("digest", "subscriber", "status", "attempts", "message_id", "last_error", "claimed_by",
                "possible_duplicate", "created_at")]
    values = [digest.pk, Delivery.Status.QUEUED, 0, "", "", "", False, now]  # in the order of `columns`
    quote = db_connection.ops.quote_name
    # "WHERE true" lets SQLite tell ON CONFLICT from a join constraint after a SELECT.
    sql = (f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) "
           f"SELECT %s, eligible.sid, %s, %s, %s, %s, %s, %s, %s FROM ({select}) eligible WHERE true "
           f"ON CONFLICT DO NOTHING")
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [*values, *params])
        created = cursor.rowcount
    zone = render.newsletter_zone(digest.newsletter)
    timed = (eligible_subscribers(digest).filter(send_time__isnull=False)
             .values_list("pk", "send_time", "timezone").iterator(chunk_size=FAN_OUT_CHUNK))
    while chunk := list(islice(timed, FAN_OUT_CHUNK)):
        created += len(Delivery.objects.bulk_create(
            [Delivery(digest_id=digest.pk, subscriber_id=pk, created_at=now,
                      not_before=schedule.subscriber_release(send_time, tz_name, zone, now))
             for pk, send_time, tz_name in chunk], ignore_conflicts=True))
    return created


def start_send(digest_id: int) -> list[list[int]]:
    """begin_send + fan_out, for in-process callers that want the refusal as an exception."""
    begin_send(digest_id)
    return fan_out(digest_id)


def _due() -> Q:
    return Q(not_before__isnull=True) | Q(not_before__lte=timezone.now())


def nudge(digest_id: int | None = None) -> list[list[int]]:
    """Queued, due rows with no message believed in flight: mark them nudged and return them in batches.

    Batches never mix digests. The caller publishes one send_batch per batch.
    """
    now = timezone.now()
    stale = (Q(lease_until__isnull=True) | Q(lease_until__lt=now)) & _due()
    rows = Delivery.objects.filter(stale, status=Delivery.Status.QUEUED, digest__status=Digest.Status.SENDING)
    if digest_id is not None:
        rows = rows.filter(digest_id=digest_id)
    # One UPDATE marks them all, then the rows carrying this very lease are listed (by index): two
    # statements whatever the list size. The random microseconds keep two concurrent nudges apart; if
    # one overwrites the other's lease, its rows are simply published by it instead.
    lease = now + timedelta(seconds=settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS,
                            microseconds=-random.randrange(1_000_000))
    Delivery.objects.filter(pk__in=rows.values("pk")).update(lease_until=lease)
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


# --- claiming -------------------------------------------------------------------------


def claim(delivery_ids: list[int], claimer: str) -> list[Delivery]:
    """Atomically take the claimable rows among `delivery_ids` under a lease.

    Claimable: queued, due, under the attempt cap, of a digest that is sending. Rows another
    worker holds are skipped, never waited for.
    """
    now = timezone.now()
    candidates = Delivery.objects.filter(
        _due(), pk__in=delivery_ids, status=Delivery.Status.QUEUED, digest__status=Digest.Status.SENDING,
        attempts__lt=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS,
    )
    taken = {"status": Delivery.Status.SENDING, "claimed_by": claimer, "message_id": "",
             "lease_until": now + timedelta(seconds=settings.NEWSDIGEST_DELIVERY_LEASE_SECONDS),
             "attempts": F("attempts") + 1}
    if db_connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            pks = list(candidates.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True))
            Delivery.objects.filter(pk__in=pks, status=Delivery.Status.QUEUED).update(**taken)
    else:
        # SQLite serialises writers: the status guard in this one UPDATE is the compare-and-set.
        candidates.update(**taken)
    return list(Delivery.objects.filter(claimed_by=claimer, status=Delivery.Status.SENDING)
                .select_related("subscriber").order_by("pk"))


def _mine(delivery: Delivery, claimer: str):
    return Delivery.objects.filter(pk=delivery.pk, claimed_by=claimer, status=Delivery.Status.SENDING)


def _finish(delivery: Delivery, claimer: str, status: str, **fields) -> bool:
    return bool(_mine(delivery, claimer).update(status=status, **fields))


def _release(rows: list[Delivery], claimer: str, reason: str, retry_in: float = 0.0) -> int:
    """Give rows back untried: the claim's attempt does not count; a cancelled digest's rows end skipped."""
    if not rows:
        return 0
    released = Delivery.objects.filter(pk__in=[d.pk for d in rows], claimed_by=claimer,
                                       status=Delivery.Status.SENDING).update(
        status=Delivery.Status.QUEUED, claimed_by="", message_id="", attempts=F("attempts") - 1, last_error=reason,
        lease_until=timezone.now() + timedelta(seconds=retry_in) if retry_in else None)
    _skip_cancelled(rows[0].digest_id)
    return released


def _skip_cancelled(digest_id: int | None = None) -> None:
    """Rows a worker or a retry put back after their digest was cancelled end skipped."""
    cancelled = Digest.objects.filter(status=Digest.Status.CANCELLED)
    if digest_id is not None:
        cancelled = cancelled.filter(pk=digest_id)
    # Explicit digest ids, so the (digest, status) index is used: joined to the digests, the planner
    # scanned every queued row of a 1M-row send (bench/fanout/rows.py).
    ids = list(cancelled.values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        Delivery.objects.filter(digest_id__in=ids[start:start + 500], status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.SKIPPED, last_error="digest cancelled", lease_until=None)


def _drop_unwanted(rows: list[Delivery], digest: Digest, claimer: str, counts: dict) -> list[Delivery]:
    """Re-check inside the claim: an unsubscribe, bounce or pause since the fan-out wins."""
    state = dict(eligible_subscribers(digest).filter(pk__in=[d.subscriber_id for d in rows])
                 .values_list("pk", "paused"))
    keep = []
    for delivery in rows:
        if delivery.subscriber_id not in state:
            _finish(delivery, claimer, Delivery.Status.SKIPPED, lease_until=None, last_error="no longer subscribed")
            counts["skipped"] += 1
        elif state[delivery.subscriber_id]:
            _finish(delivery, claimer, Delivery.Status.SKIPPED, lease_until=None, last_error="subscriber paused")
            counts["skipped"] += 1
        else:
            keep.append(delivery)
    return keep


# --- talking to the mail server -------------------------------------------------------


def _envelope_address(address: str, encoding: str) -> str:
    """The bare address for MAIL FROM / RCPT TO; Django's full sanitising only when it is not plain ASCII."""
    if address.isascii():
        return parseaddr(address)[1] or address
    return sanitize_address(address, encoding)


@dataclass(frozen=True)
class Outcome:
    """sent; permanent (5xx: never retry); transient (4xx or no connection: certainly not
    delivered, retry); unknown (the connection broke after the message data went out)."""

    kind: str
    reply: str = ""
    # The receiving server refused the recipient (RCPT) for good: a bounce without a report.
    recipient_refused: bool = False


class Mailer:
    """One open connection per worker process, reused across messages and batches."""

    IDLE_CHECK_SECONDS = 15

    def __init__(self):
        self.backend = None
        self.last_used = 0.0

    def close(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                log.debug("closing the mail connection failed", exc_info=True)
        self.backend = None

    def _smtp(self):
        return getattr(self.backend, "connection", None) if isinstance(self.backend, SMTPBackend) else None

    def open(self) -> None:
        """Raises DeliveryTransientError when the server cannot be reached."""
        smtp = self._smtp()
        if smtp is not None and time.monotonic() - self.last_used > self.IDLE_CHECK_SECONDS:
            try:
                if smtp.noop()[0] != 250:
                    self.close()
            except (smtplib.SMTPException, OSError):
                self.close()
        if self.backend is None:
            backend = get_connection(fail_silently=False)
            try:
                backend.open()
            except (smtplib.SMTPException, OSError) as exc:
                raise DeliveryTransientError(f"cannot connect to the mail server: {exc}") from exc
            self.backend = backend
        self.last_used = time.monotonic()

    def send(self, message: EmailMultiAlternatives) -> Outcome:
        reused = self.backend is not None
        outcome = self._send_once(message)
        if reused and outcome.kind == "transient" and self.backend is None:
            # A kept-open connection the server had dropped: the message never went out; once more on a new one.
            outcome = self._send_once(message)
        return outcome

    def _send_once(self, message: EmailMultiAlternatives) -> Outcome:
        self.open()
        smtp = self._smtp()
        outcome = self._send_smtp(smtp, message) if smtp is not None else self._send_other(message)
        self.last_used = time.monotonic()
        return outcome

    def _reject(self, smtp: smtplib.SMTP, code: int, reply: bytes | str) -> Outcome:
        text = f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        if code == 421:  # the server is closing the channel
            self.close()
        else:
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
        return Outcome("permanent" if code >= 500 else "transient", text)

    def _send_smtp(self, smtp: smtplib.SMTP, message: EmailMultiAlternatives) -> Outcome:
        """MAIL, RCPT, DATA by hand: a failure before DATA is certainly not a delivery."""
        encoding = message.encoding or settings.DEFAULT_CHARSET
        sender = _envelope_address(getattr(message, "return_path", "") or message.from_email, encoding)
        data = message.message().as_bytes(linesep="\r\n")
        phase = "envelope"
        try:
            smtp.ehlo_or_helo_if_needed()
            code, reply = smtp.mail(sender)
            if code != 250:
                return self._reject(smtp, code, reply)
            for recipient in message.recipients():
                code, reply = smtp.rcpt(_envelope_address(recipient, encoding))
                if code not in (250, 251):
                    outcome = self._reject(smtp, code, reply)
                    return Outcome(outcome.kind, outcome.reply, recipient_refused=outcome.kind == "permanent")
            phase = "data"
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: the message never went out
            return self._reject(smtp, exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Outcome("unknown" if phase == "data" else "transient", f"{type(exc).__name__}: {exc}")
        if code != 250:
            return self._reject(smtp, code, reply)
        return Outcome("sent", f"{code} {reply.decode(errors='replace')}")

    def _send_other(self, message: EmailMultiAlternatives) -> Outcome:
        """ESP (anymail) and file backends: an exception leaves the outcome unknown unless it says otherwise."""
        from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

        try:
            self.backend.send_messages([message])
        except AnymailRecipientsRefused as exc:
            return Outcome("permanent", str(exc))
        except AnymailAPIError as exc:
            status = getattr(exc, "status_code", None)
            if status is not None and 400 <= status < 500 and status != 429:
                return Outcome("permanent", f"{status} {exc}")
            self.close()
            return Outcome("transient" if status else "unknown", str(exc))
        except Exception as exc:  # noqa: BLE001 - any backend error: retried under the attempt cap
            self.close()
            return Outcome("unknown", f"{type(exc).__name__}: {exc}")
        return Outcome("sent")


_mailer = Mailer()


def close_connection() -> None:
    _mailer.close()


@cache
def _bucket(name: str, rate: float) -> TokenBucket:
    return TokenBucket(f"deliver:{name}", rate, capacity=max(1.0, rate))


def throttle(email: str, timeout: float) -> float:
    """Take a token from the global and the recipient domain's bucket (shared by all workers).

    Returns 0 when sending may go ahead, else roughly how long to come back later.
    """
    limits = [("global", settings.NEWSDIGEST_SEND_RATE),
              (f"domain:{email.rpartition('@')[2].lower()}", settings.NEWSDIGEST_SEND_RATE_PER_DOMAIN)]
    deadline = time.monotonic() + timeout
    for name, rate in limits:
        if rate <= 0:
            continue
        while (wait := _bucket(name, rate).try_acquire()) > 0:
            if time.monotonic() + wait > deadline:
                return wait
            time.sleep(wait)
    return 0.0


def backoff(attempts: int) -> float:
    """Exponential with full jitter, capped below the broker's visibility timeout."""
    ceiling = min(settings.NEWSDIGEST_DELIVERY_BACKOFF_MAX,
                  settings.NEWSDIGEST_DELIVERY_BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


# --- one batch ------------------------------------------------------------------------


@dataclass
class BatchResult:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("sent", "failed", "skipped", "requeued", "released"), 0))
    retry_ids: list[int] = field(default_factory=list)
    retry_in: float = 0.0


def _record_failure(digest_id: int, reply: str) -> None:
    Digest.objects.filter(pk=digest_id).update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.NEWSDIGEST_DELIVERY_PAUSE_AFTER_ERRORS
    failures = Digest.objects.filter(pk=digest_id).values_list("consecutive_failures", flat=True).first() or 0
    if limit and failures >= limit and transition(
            Digest.objects.filter(pk=digest_id), from_status=Digest.Status.SENDING, to_status=Digest.Status.PAUSED,
            pause_reason=f"auto-paused after {failures} consecutive errors; last: {reply}"[:2000]):
        log.error("digest %s auto-paused after %s consecutive errors (last: %s)", digest_id, failures, reply)


def _retry_or_fail(delivery: Delivery, claimer: str, outcome: Outcome, result: BatchResult) -> None:
    """A 4xx or a broken connection: back to the queue with backoff, or failed at the attempt cap."""
    unknown = outcome.kind == "unknown"
    if delivery.attempts >= settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS:
        _finish(delivery, claimer, Delivery.Status.FAILED, lease_until=None, possible_duplicate=unknown or F(
            "possible_duplicate"), last_error=f"gave up after {delivery.attempts} attempts: {outcome.reply}")
        result.counts["failed"] += 1
        return
    delay = backoff(delivery.attempts)
    # The retry message is published with this countdown; the sweeper re-nudges if it is lost.
    lease = timezone.now() + timedelta(seconds=delay + settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS)
    fields = {"claimed_by": "", "lease_until": lease, "last_error": outcome.reply}
    if unknown:
        log.warning("delivery %s: outcome unknown (%s); re-sent later as a possible duplicate",
                    delivery.pk, outcome.reply)
        fields["possible_duplicate"] = True
    else:
        fields["message_id"] = ""
    if _finish(delivery, claimer, Delivery.Status.QUEUED, **fields):
        result.counts["requeued"] += 1
        result.retry_ids.append(delivery.pk)
        result.retry_in = max(result.retry_in, delay)


def _mark_in_flight(chunk: list[tuple[Delivery, EmailMultiAlternatives]], claimer: str) -> set[int]:
    """Write the Message-IDs of the next few messages in one durable commit, before any of them is
    sent: a crash from here on flags these rows (at most NEWSDIGEST_DELIVERY_INFLIGHT_GROUP) for re-send
    as possible duplicates. Returns the ids of the rows still ours."""
    for delivery, message in chunk:
        delivery.message_id = message.extra_headers["Message-ID"]
    mine = Delivery.objects.filter(claimed_by=claimer, status=Delivery.Status.SENDING)
    with transaction.atomic():
        if _relaxed():
            with db_connection.cursor() as cursor:  # durable whatever the session says (see _relaxed_commits)
                cursor.execute("SET LOCAL synchronous_commit TO on")
        updated = mine.bulk_update([d for d, _ in chunk], ["message_id"])
    if updated == len(chunk):
        return {d.pk for d, _ in chunk}
    return set(mine.filter(pk__in=[d.pk for d, _ in chunk]).values_list("pk", flat=True))


def _relaxed() -> bool:
    return db_connection.vendor == "postgresql" and settings.NEWSDIGEST_DELIVERY_RELAXED_COMMIT


@contextmanager
def _relaxed_commits():
    """PostgreSQL: while a batch is sent, its commits (the per-message `sent` marks above all) do not
    wait for the WAL flush, which was a disk sync per message; the in-flight marks still do.

    Nothing widens: a worker crash loses no commit (the server has it), and a database crash can
    only lose the last fraction of a second of `sent` marks, whose rows carry their durable
    Message-ID and are re-sent flagged as possible duplicates, as after any crash mid-send.
    """
    if not _relaxed():
        yield
        return
    with db_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with db_connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def send_batch(delivery_ids: list[int]) -> BatchResult:
    """Claim and send the claimable rows of one batch over this process's SMTP connection.

    5xx fails the row for good with the server's reply; 4xx and broken connections send the
    row back with backoff (`retry_ids`, `retry_in`); a digest paused or cancelled meanwhile
    gets its unsent rows back within about a second.
    """
    claimer = worker_name()
    rows = claim(delivery_ids, claimer)
    if not rows:
        return BatchResult()
    with _relaxed_commits():
        return _send_rows(rows, claimer)


def _send_rows(rows: list[Delivery], claimer: str) -> BatchResult:
    result = BatchResult()
    digest = Digest.objects.select_related("newsletter").get(pk=rows[0].digest_id)
    rendered = render.ensure_rendered(digest)
    rows = _drop_unwanted(rows, digest, claimer, result.counts)
    lease = settings.NEWSDIGEST_DELIVERY_LEASE_SECONDS
    group = max(1, settings.NEWSDIGEST_DELIVERY_INFLIGHT_GROUP)
    next_status_check = renew_at = time.monotonic()
    failed_since_reset = False
    index = 0
    while index < len(rows):
        if time.monotonic() >= next_status_check:
            next_status_check = time.monotonic() + 1.0
            status = Digest.objects.filter(pk=digest.pk).values_list("status", flat=True).first()
            if status != Digest.Status.SENDING:
                result.counts["released"] += _release(rows[index:], claimer, f"digest {status}")
                break
        if time.monotonic() >= renew_at:
            renew_at = time.monotonic() + lease / 3
            Delivery.objects.filter(pk__in=[d.pk for d in rows[index:]], claimed_by=claimer,
                                    status=Delivery.Status.SENDING).update(
                lease_until=timezone.now() + timedelta(seconds=lease))
        chunk = []
        for delivery in rows[index:index + group]:
            delivery.digest = digest
            chunk.append((delivery, build_message(digest, delivery.subscriber, rendered)))
        ours = _mark_in_flight(chunk, claimer)
        for offset, (delivery, message) in enumerate(chunk):
            if delivery.pk not in ours:
                log.warning("delivery %s: lease lost before sending; left to its new owner", delivery.pk)
                continue
            if wait := throttle(delivery.subscriber.email, timeout=min(5.0, lease / 3)):
                result.counts["released"] += _release(rows[index + offset:], claimer, "rate limited", retry_in=wait)
                index = len(rows)
                break
            try:
                outcome = _mailer.send(message)
            except DeliveryTransientError as exc:
                result.counts["released"] += _release(rows[index + offset:], claimer, str(exc))
                _record_failure(digest.pk, str(exc))
                raise
            if outcome.kind == "sent":
                if not _finish(delivery, claimer, Delivery.Status.SENT, sent_at=timezone.now(), lease_until=None,
                               last_error=""):
                    log.warning("delivery %s: sent after its lease was taken over; flagged", delivery.pk)
                    Delivery.objects.filter(pk=delivery.pk).update(possible_duplicate=True)
                result.counts["sent"] += 1
                if failed_since_reset:
                    Digest.objects.filter(pk=digest.pk).update(consecutive_failures=0)
                    failed_since_reset = False
                continue
            failed_since_reset = True
            _record_failure(digest.pk, outcome.reply)
            if outcome.kind == "permanent":
                _finish(delivery, claimer, Delivery.Status.FAILED, lease_until=None, last_error=outcome.reply)
                result.counts["failed"] += 1
                if outcome.recipient_refused:
                    bounces.record_refusal(delivery, outcome.reply)
            else:
                _retry_or_fail(delivery, claimer, outcome, result)
        index += group
    if result.counts["sent"]:
        Digest.objects.filter(pk=digest.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
    finish_if_done(digest.pk)
    return result


# --- lifecycle, sweeping and reporting -------------------------------------------------


def finish_if_done(digest_id: int, *, fanned_out: bool = False) -> bool:
    """sending -> sent once no row is queued or in flight.

    A digest with no rows at all is only finished by its fan-out (`fanned_out`): before
    that, "no open rows" means "not created yet", not "all sent".
    """
    rows = Delivery.objects.filter(digest_id=digest_id)
    if rows.filter(status__in=OPEN_ROWS).exists() or not (fanned_out or rows.exists()):
        return False
    return bool(transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.SENDING,
                           to_status=Digest.Status.SENT, sent_at=timezone.now()))


def pause(digest_id: int, reason: str = "paused by an operator") -> None:
    if not transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.SENDING,
                      to_status=Digest.Status.PAUSED, pause_reason=reason):
        raise SendRefused(f"digest {digest_id} is {_status(digest_id)}; only a sending digest can be paused")


def resume(digest_id: int) -> list[list[int]]:
    """paused -> sending; returns the queued rows in batches for the caller to publish."""
    if not transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.PAUSED,
                      to_status=Digest.Status.SENDING, pause_reason="", consecutive_failures=0):
        raise SendRefused(f"digest {digest_id} is {_status(digest_id)}; only a paused digest can be resumed")
    Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.QUEUED).update(lease_until=None)
    return nudge(digest_id)


def cancel(digest_id: int) -> int:
    """Stops a digest for good; rows not yet sent end `skipped`. Returns how many were skipped."""
    if not transition(Digest.objects.filter(pk=digest_id),
                      from_status=[Digest.Status.DRAFT, Digest.Status.APPROVED, Digest.Status.SENDING,
                                   Digest.Status.PAUSED],
                      to_status=Digest.Status.CANCELLED):
        raise SendRefused(f"digest {digest_id} is {_status(digest_id)}; it can no longer be cancelled")
    return Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.SKIPPED, last_error="digest cancelled", lease_until=None)


def _status(digest_id: int) -> str:
    return Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first() or "missing"


def expired_leases_to_queue() -> int:
    """Rows a dead (or stalled) worker held go back to the queue.

    A row with its Message-ID written was in the SMTP conversation when its worker
    vanished: the server may have accepted it, so the re-send is flagged.
    """
    now = timezone.now()
    expired = Delivery.objects.filter(status=Delivery.Status.SENDING, lease_until__lt=now)
    # One line however many rows (a dead worker can leave a whole batch): the report names them all.
    in_flight = list(expired.exclude(message_id="").values_list("pk", flat=True)[:10])
    flagged = expired.exclude(message_id="").update(possible_duplicate=True)
    if flagged:
        log.warning("%s deliveries (%s%s) lost their worker mid-send; they may be delivered twice",
                    flagged, ", ".join(map(str, in_flight)), ", ..." if flagged > len(in_flight) else "")
    failed = expired.filter(attempts__gte=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS).update(
        status=Delivery.Status.FAILED, lease_until=None, last_error=_gave_up(Value("worker lost")))
    return failed + expired.update(status=Delivery.Status.QUEUED, claimed_by="", lease_until=None)


def _gave_up(reason: Value | F) -> Concat:
    prefix = Value(f"gave up after {settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS} attempts: ")
    return Concat(prefix, reason, output_field=TextField())


def sweep() -> list[list[int]]:
    """The periodic safety net; returns batches to publish.

    Re-queues expired leases, fails rows stuck at the attempt cap, redoes a fan-out whose
    start message was lost, re-nudges queued rows nobody picked up, and closes finished digests.
    """
    expired_leases_to_queue()
    Delivery.objects.filter(status=Delivery.Status.QUEUED,
                            attempts__gte=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS).update(
        status=Delivery.Status.FAILED, lease_until=None, last_error=_gave_up(F("last_error")))
    batches = []
    stalled = timezone.now() - timedelta(seconds=settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS)
    for digest_id in (Digest.objects.filter(status=Digest.Status.SENDING, send_started_at__lt=stalled)
                      .values_list("pk", flat=True)):
        # One index probe per sending digest (a handful), never a count or a join over the rows: as one
        # NOT EXISTS the planner chose a sequential scan of a 1M-row table (bench/fanout/rows.py).
        if not Delivery.objects.filter(digest_id=digest_id).exists():
            batches += fan_out(digest_id)
    batches += nudge()
    for digest_id in sending_digest_ids():
        finish_if_done(digest_id)
    _skip_cancelled()
    return batches


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


def send_test(digest: Digest, email: str) -> None:
    """An editor's preview copy: real rendering, no list headers, no Delivery row."""
    rendered = render.ensure_rendered(digest)
    probe = Subscriber(email=email, name="", format=Subscriber.Format.HTML, pk=0)
    build_message(digest, probe, rendered, test=True).send()


def sending_digest_ids() -> list[int]:
    return list(Digest.objects.filter(status=Digest.Status.SENDING).values_list("pk", flat=True))
