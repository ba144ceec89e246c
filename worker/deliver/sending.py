"""Sending: messages built and DKIM-signed, one kept-open SMTP connection per worker, batches sent.

A row is marked in flight (its Message-ID written) before the SMTP conversation and `sent` right after
the server's 250, so the only possible double send is a crash in between; the sweeper flags such rows
`possible_duplicate` and the report names them.
"""

import logging
import random
import re
import smtplib
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.header import Header
from email.utils import formataddr, make_msgid, parseaddr
from functools import cache, lru_cache

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import connection as db_connection
from django.db.backends.utils import CursorWrapper
from django.db.models import F
from django.utils import timezone

from .. import bounces, ratelimit, render
from ..models import Delivery, Digest, Subscriber
from ..ratelimit import TokenBucket
from . import mime
from .claims import Claimed, SentMarks, claim, drop_unwanted, finish, finish_if_done, release, worker_name
from .dkim import SignedEmailMessage

log = logging.getLogger("newsdigest.deliver")


class DeliveryTransientError(Exception):
    """The mail server is unreachable or deferring; the batch should be retried later."""


def message_id(digest: Digest, subscriber: Subscriber | render.Recipient) -> str:
    """Deterministic, so a re-send after a crash carries the same id and can be deduplicated."""
    return f"<nd.{digest.pk}.{subscriber.pk}@{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>"


def one_line(value: str) -> str:
    """Collapse CR/LF and other whitespace so no field can inject a header."""
    return " ".join(value.split())


def build_message(
    digest: Digest, subscriber: Subscriber | render.Recipient, rendered: render.RenderedEmail, *, connection=None,
    test: bool = False,
) -> EmailMultiAlternatives:
    """One subscriber's message; DKIM-signed at serialisation when a key is configured (worker.dkim).

    Every header value passes `one_line`, and Django refuses any that still holds CR/LF; non-ASCII
    display names and subjects go out RFC 2047-encoded.
    """
    newsletter = digest.newsletter
    # Signed once per message: the body's unsubscribe link and both List-Unsubscribe targets carry it.
    token = None if test else render.unsubscribe_token(subscriber, newsletter)
    values = render.subscriber_values(digest, subscriber, None if test else timezone.now(), unsubscribe_token=token)
    body = render.substitute(rendered, values)
    sender = formataddr((one_line(newsletter.sender_name), one_line(newsletter.sender_email)))
    email = one_line(subscriber.email)
    recipient = formataddr((one_line(subscriber.name), email)) if one_line(subscriber.name) else email
    domain = settings.NEWSDIGEST_MESSAGE_ID_DOMAIN
    headers = {"Message-ID": make_msgid("nd.test", domain=domain) if test else message_id(digest, subscriber)}
    if not test:
        headers |= {
            "List-Id": f"{_phrase(newsletter.name)} <{newsletter.slug}.{domain}>",
            "List-Unsubscribe": f"<{values['unsubscribe_url']}>, <mailto:{settings.NEWSDIGEST_UNSUBSCRIBE_MAILTO}"
                                f"?subject=unsubscribe%20{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
        }
    message = SignedEmailMessage(
        subject=one_line(digest.subject),
        body=body.text,
        from_email=sender,
        to=[recipient],
        reply_to=[one_line(newsletter.reply_to)] if newsletter.reply_to else None,
        headers=headers,
        connection=connection,
    )
    message.envelope_recipients = [email]  # RCPT TO as it is, rather than parsed back out of the To header
    if not test and (return_path := bounces.return_path(digest.pk, subscriber.pk)):
        message.return_path = return_path  # VERP envelope sender for SMTP; ESPs report bounces by webhook
    if subscriber.format == Subscriber.Format.HTML:
        message.attach_alternative(body.html, "text/html")
    return message


def message_bytes(message: EmailMultiAlternatives) -> bytes:
    """The message as it goes over SMTP (CRLF line ends): Django's bytes, serialised the cheaper way of mime.py."""
    return mime.as_bytes(message.message())


def _phrase(name: str) -> str:
    """A List-Id description (RFC 2919 phrase): quoted when ASCII, an encoded word otherwise."""
    name = one_line(name)
    if not name.isascii():
        return one_line(Header(name, "utf-8").encode())
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# An address that is already a bare ASCII addr-spec (what `parseaddr` would return unchanged).
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


@lru_cache(maxsize=256)  # the same From for every message of a digest: parsed once, not per message
def _envelope_address(address: str, encoding: str) -> str:
    """The bare address for MAIL FROM / RCPT TO; Django's full sanitising only when it is not plain ASCII.

    A bare address (a subscriber's RCPT TO, a VERP return path) is returned as is: `parseaddr`, the
    costliest step of the envelope, would return it unchanged.
    """
    if _BARE_ADDRESS.fullmatch(address):
        return address
    if address.isascii():
        return parseaddr(address)[1] or address
    return sanitize_address(address, encoding)


_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def _pipelined_data(smtp: smtplib.SMTP, data_reply: tuple[int, bytes], data: bytes) -> tuple[int, bytes]:
    """The message after a pipelined DATA: what `smtplib.SMTP.data` does once the 354 is in (lines starting
    with a dot doubled, the final CRLF.CRLF), as one write; returns the server's final reply."""
    code, reply = data_reply
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    stuffed = _LEADING_DOT.sub(b"..", data)
    smtp.send(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    return smtp.getreply()


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

    def _reject(self, smtp: smtplib.SMTP, code: int, reply: bytes | str, *, data_open: bool = False) -> Outcome:
        """The server refused a command: the transaction is reset (RSET) for the next message, or the
        connection dropped when the server is closing it (421) or already waits for message data that
        will not come (a pipelined DATA it accepted despite the refusal: hanging up delivers nothing)."""
        text = f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        if data_open:
            smtp.close()  # the socket alone: a QUIT now would be read as message data
            self.close()
        elif code == 421:
            self.close()
        else:
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
        return Outcome("permanent" if code >= 500 else "transient", text)

    def _send_smtp(self, smtp: smtplib.SMTP, message: EmailMultiAlternatives) -> Outcome:
        """MAIL, RCPT, DATA by hand: a failure before the message data goes out is certainly not a delivery.

        The envelope goes out before the message is serialised, and its replies are read after: the server
        answers while this process spends its millisecond on the MIME bytes, instead of each waiting for
        the other. When the server offers PIPELINING (RFC 2920: Postfix, Exim and the ESPs' SMTP endpoints
        do), RCPT TO and DATA travel in the same write as MAIL FROM, so the envelope costs one wait, not three.
        """
        encoding = message.encoding or settings.DEFAULT_CHARSET
        sender = _envelope_address(getattr(message, "return_path", "") or message.from_email, encoding)
        recipients = [_envelope_address(recipient, encoding)
                      for recipient in getattr(message, "envelope_recipients", None) or message.recipients()]
        phase = "envelope"
        try:
            smtp.ehlo_or_helo_if_needed()
            pipelined = smtp.has_extn("pipelining")
            commands = [f"MAIL FROM:{smtplib.quoteaddr(sender)}"]
            if pipelined:
                commands += [f"RCPT TO:{smtplib.quoteaddr(recipient)}" for recipient in recipients] + ["DATA"]
            smtp.send("".join(f"{command}\r\n" for command in commands))  # one write: no Nagle wait between
            try:
                data = message_bytes(message)
            except BaseException:
                self.close()  # the envelope's replies are still unread on this connection
                raise
            replies = [smtp.getreply() for _ in commands]
            # A pipelined DATA the server accepted although it refused MAIL or RCPT: it now waits for data.
            data_open = pipelined and replies[-1][0] == 354
            code, reply = replies[0]
            if code != 250:
                return self._reject(smtp, code, reply, data_open=data_open)
            # Without pipelining, RCPT one at a time (lazily: nothing more is sent after a refusal).
            for code, reply in replies[1:-1] if pipelined else (smtp.rcpt(r) for r in recipients):
                if code not in (250, 251):
                    outcome = self._reject(smtp, code, reply, data_open=data_open)
                    return Outcome(outcome.kind, outcome.reply, recipient_refused=outcome.kind == "permanent")
            phase = "data"
            code, reply = _pipelined_data(smtp, replies[-1], data) if pipelined else smtp.data(data)
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
    """`throttle_group` for one recipient: 0 when sending may go ahead, else roughly how long to come back later."""
    granted, wait = throttle_group([email], timeout)
    return 0.0 if granted else wait


def throttle_group(emails: Sequence[str], timeout: float) -> tuple[int, float]:
    """Take a token for each recipient, in order, from the global and its domain's bucket (shared by all
    workers), one Redis round trip per try rather than two per message; waits up to `timeout`.

    Returns (how many leading recipients may be sent to now, roughly how long to come back for the rest).
    """
    demands = [[_bucket(name, rate) for name, rate in (
        ("global", settings.NEWSDIGEST_SEND_RATE),
        (f"domain:{email.rpartition('@')[2].lower()}", settings.NEWSDIGEST_SEND_RATE_PER_DOMAIN)) if rate > 0]
        for email in emails]
    deadline = time.monotonic() + timeout
    granted = 0
    while granted < len(demands):
        taken, wait = ratelimit.take_in_order(demands[granted:])
        granted += taken
        if granted == len(demands):
            break
        if time.monotonic() + wait > deadline:
            return granted, wait
        time.sleep(wait)
    return granted, 0.0


def backoff(attempts: int) -> float:
    """Exponential with full jitter, capped below the broker's visibility timeout."""
    ceiling = min(settings.NEWSDIGEST_DELIVERY_BACKOFF_MAX,
                  settings.NEWSDIGEST_DELIVERY_BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


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
    if limit and failures >= limit and Digest.transition(
            digest_id, from_status=Digest.Status.SENDING, to_status=Digest.Status.PAUSED,
            pause_reason=f"auto-paused after {failures} consecutive errors; last: {reply}"[:2000]):
        log.error("digest %s auto-paused after %s consecutive errors (last: %s)", digest_id, failures, reply)


def _retry_or_fail(delivery: Claimed, claimer: str, outcome: Outcome, result: BatchResult) -> None:
    """A 4xx or a broken connection: back to the queue with backoff, or failed at the attempt cap."""
    unknown = outcome.kind == "unknown"
    if delivery.attempts >= settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS:
        finish(delivery, claimer, Delivery.Status.FAILED, lease_until=None, possible_duplicate=unknown or F(
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
    if finish(delivery, claimer, Delivery.Status.QUEUED, **fields):
        result.counts["requeued"] += 1
        result.retry_ids.append(delivery.pk)
        result.retry_in = max(result.retry_in, delay)


def in_flight_mark(claimer: str, cursor: CursorWrapper) -> Callable[[list[int]], set[int]]:
    """`mark(ids)` writes the Message-IDs of the next few rows still ours in one durable commit, before any
    of them is sent: a crash from here on flags these rows (at most NEWSDIGEST_DELIVERY_INFLIGHT_GROUP) for
    re-send as possible duplicates. Returns the ids of the rows still ours.

    Compiled once per batch and one round trip per group: the database computes each row's id (the
    same `<nd.digest.subscriber@domain>` as `message_id`) and returns the rows it marked. On PostgreSQL,
    where the batch's commits do not wait for the WAL flush (`_relaxed_commits`), the statement makes its
    own commit durable with `set_config('synchronous_commit', 'on', true)`, which lasts only for the
    statement's transaction: the same as `SET LOCAL synchronous_commit TO on` in a transaction block,
    without the three round trips (BEGIN, SET, COMMIT) that block took.
    """
    meta, quote = Delivery._meta, db_connection.ops.quote_name
    table = quote(meta.db_table)

    def column(name: str) -> str:
        return f"{table}.{quote(meta.get_field(name).column)}"

    durable = " FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable" if _relaxed() else ""
    head = (f"UPDATE {table} SET {quote(meta.get_field('message_id').column)} = "
            f"%s || {column('digest')} || '.' || {column('subscriber')} || %s{durable}"
            f" WHERE {column('claimed_by')} = %s AND {column('status')} = %s AND {column('id')} IN (")
    tail = f") RETURNING {column('id')}"
    fixed = ["<nd.", f"@{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>", claimer, Delivery.Status.SENDING]

    def mark(ids: list[int]) -> set[int]:
        cursor.execute(head + ", ".join(["%s"] * len(ids)) + tail, [*fixed, *ids])
        return {pk for (pk,) in cursor.fetchall()}

    return mark


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
    # One cursor for the batch's per-message statements: opening one per statement cost as much as running it.
    with _relaxed_commits(), db_connection.cursor() as cursor:
        return _send_rows(rows, claimer, cursor)


def _send_rows(rows: list[Claimed], claimer: str, cursor: CursorWrapper) -> BatchResult:
    result = BatchResult()
    digest = Digest.objects.select_related("newsletter").get(pk=rows[0].digest_id)
    rendered = render.ensure_rendered(digest)
    rows = drop_unwanted(rows, digest, claimer, result.counts)
    lease = settings.NEWSDIGEST_DELIVERY_LEASE_SECONDS
    group = max(1, settings.NEWSDIGEST_DELIVERY_INFLIGHT_GROUP)
    marks, mark_in_flight = SentMarks(claimer, cursor), in_flight_mark(claimer, cursor)
    next_status_check = renew_at = time.monotonic()
    failed_since_reset = False
    index = 0
    while index < len(rows):
        if time.monotonic() >= next_status_check:
            next_status_check = time.monotonic() + 1.0
            status = Digest.objects.filter(pk=digest.pk).values_list("status", flat=True).first()
            if status != Digest.Status.SENDING:
                result.counts["released"] += release(rows[index:], claimer, f"digest {status}")
                break
        if time.monotonic() >= renew_at:
            renew_at = time.monotonic() + lease / 3
            Delivery.objects.filter(pk__in=[d.pk for d in rows[index:]], claimed_by=claimer,
                                    status=Delivery.Status.SENDING).update(
                lease_until=timezone.now() + timedelta(seconds=lease))
        chunk = [(delivery, build_message(digest, delivery.subscriber, rendered))
                 for delivery in rows[index:index + group]]
        ours = mark_in_flight([d.pk for d, _ in chunk])
        lost = [d.pk for d, _ in chunk if d.pk not in ours]
        if lost:
            log.warning("deliveries %s: lease lost before sending; left to their new owner", lost)
        sendable = [(d, m) for d, m in chunk if d.pk in ours]
        granted, wait = throttle_group([d.subscriber.email for d, _ in sendable], timeout=min(5.0, lease / 3))
        if granted < len(sendable):
            result.counts["released"] += release([d for d, _ in sendable[granted:]] + rows[index + group:], claimer,
                                                 "rate limited", retry_in=wait)
            sendable, index = sendable[:granted], len(rows)
        try:
            for offset, (delivery, message) in enumerate(sendable):
                try:
                    outcome = _mailer.send(message)  # while the previous message's sent mark travels
                except DeliveryTransientError as exc:
                    marks.settle()
                    result.counts["released"] += release([d for d, _ in sendable[offset:]] + rows[index + group:],
                                                         claimer, str(exc))
                    _record_failure(digest.pk, str(exc))
                    raise
                if outcome.kind == "sent":
                    marks.send(delivery.pk)
                    result.counts["sent"] += 1
                    if failed_since_reset:
                        marks.settle()
                        Digest.objects.filter(pk=digest.pk).update(consecutive_failures=0)
                        failed_since_reset = False
                    continue
                marks.settle()
                failed_since_reset = True
                _record_failure(digest.pk, outcome.reply)
                if outcome.kind == "permanent":
                    finish(delivery, claimer, Delivery.Status.FAILED, lease_until=None, last_error=outcome.reply)
                    result.counts["failed"] += 1
                    if outcome.recipient_refused:  # rare: the row as a model instance, with its committed Message-ID
                        bounces.record_refusal(Delivery.objects.select_related("subscriber").get(pk=delivery.pk),
                                               outcome.reply)
                else:
                    _retry_or_fail(delivery, claimer, outcome, result)
        finally:
            marks.settle()  # before the connection's next statement, whatever ended the group
        index += group
    if result.counts["sent"]:
        Digest.objects.filter(pk=digest.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
    finish_if_done(digest.pk)
    return result


def send_test(digest: Digest, email: str) -> None:
    """An editor's preview copy: real rendering, no list headers, no Delivery row."""
    rendered = render.ensure_rendered(digest)
    probe = Subscriber(email=email, name="", format=Subscriber.Format.HTML, pk=0)
    build_message(digest, probe, rendered, test=True).send()
