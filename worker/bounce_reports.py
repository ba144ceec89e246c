"""Reading inbound mail: is it a bounce, a complaint or neither; who failed, why, and how badly.

`read(raw)` turns one RFC 822 message into a `Report`:
- RFC 3464 delivery status notifications in any wrapping (the message/delivery-status part is found
  wherever it sits, `report-type` may be missing, `Action:` may carry free text);
- ARF complaints (RFC 5965 `message/feedback-report`);
- everything else goes to flufl.bounce (Mailman's maintained detectors for Postfix, Exim, qmail,
  Exchange, Yahoo, ... plain-text bounces), after auto-replies are set aside, and what flufl does not
  know to `_plain_text` (a delivery daemon's mail naming an address near an error status);
and each failure is classified (`classify`) from its enhanced status code and the server's words
together: hard (the address cannot receive mail), soft (try again: full, greylisted, rate limited,
temporary), policy (the receiver refused *us*: spam, blocklist, DMARC/SPF/DKIM, reputation) or
delayed (a warning, not a failure).

Parsing is bounded: mail larger than NEWSDIGEST_INBOUND_MAX_BYTES or nested deeper than the
limits below is refused with a `Refused` whose text is one line, before the parser sees it (the
standard library parser recurses once per nesting level and takes seconds on a crafted message).
"""

import re
from dataclasses import dataclass
from email import message_from_bytes, message_from_string, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

from django.conf import settings
from flufl.bounce import all_failures

HARD, SOFT, POLICY, COMPLAINT, DELAYED = "hard", "soft", "policy", "complaint", "delayed"
# More MIME boundaries or embedded messages than any real bounce carries (real ones have 2-4).
MAX_BOUNDARIES = 60
MAX_EMBEDDED = 10
# Our messages have one recipient each: a report listing more is not (only) about one of them.
MAX_RECIPIENTS = 100
# flufl.bounce reads at most this much of a message.
FLUFL_BYTES = 64 * 1024
# The first this many characters of the human-readable part are searched for the server's words.
TEXT_LIMIT = 20_000


class Refused(ValueError):
    """Mail not worth parsing (too large, too deeply nested); the text is one line."""


@dataclass(frozen=True)
class Failure:
    email: str
    klass: str
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class Report:
    """kind: bounce, complaint or none; message_ids: the Message-IDs of the returned original;
    addressed_to: where the report was sent (To/Delivered-To/X-Original-To) and the original's
    Return-Path: candidates for our VERP address."""

    kind: str
    failures: tuple[Failure, ...] = ()
    message_ids: tuple[str, ...] = ()
    addressed_to: tuple[str, ...] = ()
    note: str = ""
    subject: str = ""


# --- the server's words -> class ------------------------------------------------------------------


def _any(*phrases: str) -> re.Pattern:
    return re.compile("|".join(phrases), re.IGNORECASE)


# Checked in this order; the first that matches decides. A full mailbox or greylisting is never the
# address's fault, a block is never the recipient's; only then do "no such user" words count.
SOFT_FIRST = _any(
    r"mailbox (is )?full",
    r"over ?quota",
    r"quota (exceeded|full)",
    r"exceed\w* (the )?(storage|quota)",
    r"insufficient (system )?storage",
    r"mailbox (size|storage) limit",
    r"out of storage",
    r"full mailbox",
    r"greylist",
    r"graylist",
    r"try (again )?later",
    r"please try again",
    r"temporar",
    r"rate.?limit",
    r"too many (connections|messages|recipients|emails)",
    r"sending (rate|limit)",
    r"receiving mail at a rate",
    r"unusual rate",
)
POLICY_WORDS = _any(
    r"spam",
    r"unsolicited",
    r"bl[ao]ck ?list",
    r"blocked using",
    r"\blisted (at|on|by)\b",
    r"\brbl\b",
    r"dnsbl",
    r"spamhaus",
    r"spamcop",
    r"barracuda",
    r"sorbs",
    r"reputation",
    r"\bdmarc\b",
    r"\bspf\b",
    r"\bdkim\b",
    r"authenticat",
    r"not authori[sz]ed to send",
    r"reverse (dns|lookup)",
    r"\bptr\b",
    r"rdns",
    r"policy",
    r"prohibited",
    r"virus",
    r"malware",
    r"phish",
    r"content (was )?(rejected|filter)",
    r"message (content )?(rejected|refused) (as|due|because|for)",
    r"\bblocked\b",
    r"relay(ing)? (access )?denied",
    r"relaying not (allowed|permitted)",
    r"not permitted to relay",
    r"rfc ?5322",
    r"rfc ?2822",
    r"bulk mail",
    r"junk",
    r"abuse",
    r"security",
    r"suspicious",
    r"sender (address )?(rejected|denied|blocked)",
    r"access denied",
    r"client host rejected",
    r"service (is )?unavailable",
    r"not allowed",
    r"denied",
    r"\bfiltered\b",
    r"filter",
    r"envelope blocked",
    r"too large",
    r"size limit|exceeds size",
)
HARD_WORDS = _any(
    r"doesn'?t have an? [\w.-]+ account",
    r"user unknown",
    r"unknown user",
    r"user (not found|doesn't exist|does not exist|invalid)",
    r"no such (user|mailbox|recipient|address|account|person|local user)",
    r"does ?n[o']t exist",
    r"not exist",
    r"invalid (recipient|mailbox|address|user|account)",
    r"bad (recipient|destination|address)",
    r"recipient (address )?(unknown|not found|invalid|does not exist)",
    r"unknown (recipient|address|local.?part|mailbox|alias)",
    r"mailbox (not found|unavailable|does not exist|is disabled|disabled|inactive|unknown|not available)",
    r"account (has been |is )?(disabled|deactivated|closed|suspended|inactive|expired|locked|terminated)",
    r"account (does not|doesn't) exist",
    r"no mailbox",
    r"not our customer",
    r"unrouteable",
    r"unroutable",
    r"host (not found|unknown|or domain name not found)",
    r"domain (not found|does not exist|name not found)",
    r"name or service not known",
    r"no such domain",
    r"nxdomain",
    r"unknown (host|domain)",
    r"null mx",
    r"does not accept mail",
    r"not a valid",
    r"no longer (valid|available|active|in use)",
    r"has moved",
    r"addressee unknown",
    r"is not a known user",
    r"no valid recipients",
    r"address (rejected|invalid|unknown)",
    r"recipient rejected",
    r"mailbox name not allowed",
    r"disabled",
    r"deactivated",
    r"unknown or illegal",
    r"non.?existent",
    r"not found",
    r"no such",
    r"cannot be found",
    r"couldn't be found",
    r"could not be found",
    r"is unavailable",
)
# Words that name our sending as the problem whatever status code the server chose.
STRONG_POLICY = _any(
    r"sender (address )?(rejected|denied|blocked)",
    r"spam",
    r"unsolicited",
    r"bl[ao]ck ?list",
    r"spamhaus",
    r"\bdmarc\b",
    r"\bspf\b",
    r"\bdkim\b",
    r"reputation",
    r"not authori[sz]ed to send",
    r"authentication (failed|required|check)",
)
BLOCKED = re.compile(r"\bblocked\b", re.IGNORECASE)
HARD_CODES = ("5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1", "5.4.1", "5.4.4")


def classify(status: str, diagnostic: str) -> str:
    """hard / soft / policy from the enhanced status code and the diagnostic text, as the mature
    classifiers (Sisimai, bounce-handler) do: the words decide when they are clear, the code when not."""
    text = diagnostic
    if SOFT_FIRST.search(text):
        # "try again later" next to spam/blocklist/reputation words throttles *our* sending.
        return POLICY if STRONG_POLICY.search(text) or BLOCKED.search(text) else SOFT
    code = status[:6].rstrip(".")
    if (
        status.startswith("5.7")
        or STRONG_POLICY.search(text)
        or (POLICY_WORDS.search(text) and not status.startswith(("5.1", "5.2.1", "5.4.1")))
    ):
        return POLICY
    if status.startswith("4"):
        return SOFT
    if HARD_WORDS.search(text) or code in HARD_CODES or status.startswith("5.1."):
        return HARD
    if POLICY_WORDS.search(text):
        return POLICY
    return SOFT


# --- addresses ------------------------------------------------------------------------------------

ADDRESS = re.compile(r"^[^@\s<>()\[\]\\,;:\"|/]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def clean_address(value: str) -> str:
    """`rfc822; <User@Example.COM>` -> `user@example.com`; '' for pipes, paths and non-addresses."""
    value = value.strip()
    kind, sep, rest = value.partition(";")
    if sep and kind.strip().lower() in ("rfc822", "x-unix", "unknown", "smtp", "x400"):
        if kind.strip().lower() != "rfc822":
            return ""
        value = rest
    value = value.strip().strip("<>").strip().strip('"').strip()
    if value.startswith("|") or value.startswith("/") or "|" in value:
        return ""
    return value.lower() if ADDRESS.match(value) else ""


# --- structure ------------------------------------------------------------------------------------


def _guard(raw: bytes) -> None:
    limit = settings.NEWSDIGEST_INBOUND_MAX_BYTES
    if len(raw) > limit:
        raise Refused(f"message of {len(raw)} bytes is larger than NEWSDIGEST_INBOUND_MAX_BYTES ({limit})")
    lowered = raw.lower()
    if (listed := lowered.count(b"final-recipient:")) > MAX_RECIPIENTS:
        raise Refused(f"a report listing {listed} recipients is not about one of our messages (each has one recipient)")
    if lowered.count(b"boundary=") > MAX_BOUNDARIES or lowered.count(b"message/rfc822") > MAX_EMBEDDED:
        raise Refused(
            f"MIME nested deeper than any bounce (over {MAX_BOUNDARIES} parts or {MAX_EMBEDDED} embedded messages)"
        )


def parse(raw: bytes) -> Message:
    _guard(raw)
    try:
        return message_from_bytes(raw, policy=policy.compat32)
    except RecursionError as exc:  # the guard should have caught it; never let a crafted message crash us
        raise Refused("MIME nested too deeply to parse") from exc


def _header_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    text = part.get_payload(decode=True) or b""
    return [
        message_from_bytes(block.strip() + b"\n", policy=policy.compat32)
        for block in re.split(rb"\r?\n\s*\r?\n", text)
        if block.strip()
    ]


def _original_headers(message: Message) -> list[Message]:
    """The returned original's headers (message/rfc822 or text/rfc822-headers parts)."""
    found = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            found += [m for m in (inner if isinstance(inner, list) else [inner]) if isinstance(m, Message)]
        elif kind in ("text/rfc822-headers", "text/rfc822-header"):
            found.append(message_from_bytes(part.get_payload(decode=True) or b"", policy=policy.compat32))
    return found


MESSAGE_ID_LINE = re.compile(r"^\s*Message-I[Dd]:\s*(<[^>\s]{3,300}>)", re.MULTILINE)


def _message_ids(message: Message, text: str) -> tuple[str, ...]:
    ids = [str(h.get("Message-ID", "")).strip() for h in _original_headers(message)]
    # Plain-text bounces quote the original's headers inline.
    ids += MESSAGE_ID_LINE.findall(text)
    own = str(message.get("Message-ID", "")).strip()
    return tuple(dict.fromkeys(i for i in ids if i and i != own))


def _addressed_to(message: Message) -> tuple[str, ...]:
    """Where the report was sent, and the Return-Path the returned original arrived with (complaint
    loops keep it even when they redact the recipient): either may be our VERP address."""
    values = [
        str(v) for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To") for v in message.get_all(name, [])
    ]
    values += [str(v) for h in _original_headers(message) for v in h.get_all("Return-Path", [])]
    return tuple(dict.fromkeys(a.lower() for _, a in getaddresses(values) if "@" in a))


def _text(message: Message) -> str:
    """The human-readable part of a report (not the returned original), decoded, bounded."""
    parts, length = [], 0
    for part in _walk_outer(message):
        # A multipart leaf is one whose boundary the parser never found: its body is still the text.
        if part.get_content_maintype() == "multipart" or (
            part.get_content_maintype() == "text" and part.get_content_subtype() in ("plain", "html")
        ):
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                decoded = payload.decode(charset, errors="replace")
            except LookupError:
                decoded = payload.decode("utf-8", errors="replace")
            if part.get_content_subtype() == "html":
                decoded = re.sub(r"<[^>]{0,2000}>", " ", decoded)
            parts.append(decoded)
            length += len(decoded)
        if length > TEXT_LIMIT:
            break
    return "\n".join(parts)[:TEXT_LIMIT]


def _walk_outer(message: Message):
    """Every leaf part in order, except what lies inside a returned original."""
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_type() in RETURNED and part is not message:
            continue
        if part.is_multipart():
            stack += reversed([p for p in part.get_payload() if isinstance(p, Message)])
        else:
            yield part


RETURNED = ("message/rfc822", "text/rfc822-headers", "text/rfc822-header")
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_REPLY = re.compile(r"(?:^|[\s(:\"'])([45][0-5]\d)[\s-]")


def status_in(text: str) -> str:
    if match := STATUS.search(text):
        return match.group(0)
    if match := SMTP_REPLY.search(text):
        return f"{match.group(1)[0]}.0.0"
    return ""


def _around(text: str, email: str) -> str:
    """The server's words about one address: from its mention to the next blank-line-separated block."""
    at = text.find(email) if text.islower() else text.lower().find(email)
    if at < 0:
        return text[:1500]
    start = text.rfind("\n", 0, max(at - 200, 0)) + 1
    return text[start : at + 1200]


# --- the three kinds of report --------------------------------------------------------------------


def _dsn_failures(message: Message) -> list[Failure]:
    failures = []
    for part in message.walk():
        if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        for block in _header_blocks(part)[1:] or _header_blocks(part):
            action = str(block.get("Action", "")).strip().lower()
            status = (STATUS.search(str(block.get("Status", ""))) or [""])[0]
            if not action and status[:1] in ("4", "5"):
                action = "failed"
            if not action.startswith(("fail", "error", "delayed")):
                continue  # delivered, relayed, expanded
            email = ""
            for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
                if email := clean_address(str(block.get(name, ""))):
                    break
            if not email:
                continue
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            diagnostic = (
                diagnostic.partition(";")[2].strip() if diagnostic.lower().startswith(("smtp;", "x-")) else diagnostic
            )
            klass = DELAYED if action.startswith("delayed") else classify(status, diagnostic)
            failures.append(Failure(email, klass, status, diagnostic[:2000]))
    return failures


def _arf(message: Message) -> list[Failure] | None:
    """None when the message is not a complaint; else the complained-of recipients (maybe none:
    many reports redact them, and the delivery is then found from the Message-ID or return path)."""
    part = next((p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        return None
    blocks = _header_blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = str(fields.get("Feedback-Type", "abuse")).strip().lower()
    if feedback_type == "not-spam":
        return None
    emails = [
        clean_address(str(v)) for name in ("Original-Rcpt-To", "Removal-Recipient") for v in fields.get_all(name, [])
    ]
    if not any(emails):
        emails = [
            clean_address(a)
            for h in _original_headers(message)
            for _, a in getaddresses([str(v) for v in h.get_all("To", [])])
        ]
    detail = f"ARF {feedback_type} from {str(fields.get('Reported-Domain', '') or message.get('From', ''))}"
    return [Failure(e, COMPLAINT, "", " ".join(detail.split())[:2000]) for e in dict.fromkeys(emails) if e]


AUTO_REPLY_SUBJECT = _any(
    r"out of (the )?office",
    r"automatic reply",
    r"auto.?reply",
    r"autoreply",
    r"vacation",
    r"abwesenheit",
    r"absence",
    r"away from",
    r"on leave",
)
DAEMON = _any(r"mailer-daemon", r"postmaster", r"mail delivery", r"mail administrator", r"mailadmin")


def _auto_reply(message: Message) -> bool:
    """RFC 3834 replies and their common non-standard forms; a delivery daemon's mail is not one."""
    if DAEMON.search(str(message.get("From", ""))):
        return False
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    return (
        auto.startswith("auto-replied")
        or bool(message.get("X-Autoreply") or message.get("X-Autorespond"))
        or bool(AUTO_REPLY_SUBJECT.search(str(message.get("Subject", ""))))
    )


def _flufl(message: Message, text: str, raw: bytes) -> list[Failure]:
    if len(raw) > FLUFL_BYTES:
        # flufl's detectors scan every line with dozens of patterns: seconds on a large message. A
        # bounce says what failed near the top; what follows is the returned original.
        message = message_from_bytes(raw[:FLUFL_BYTES], policy=policy.compat32)
    if not any(a for _, a in getaddresses([str(message.get("From", ""))])):
        # flufl's Yale detector indexes the parsed From: and raises on an empty one, which stops
        # the detectors after it; we have read what we need from the original already.
        del message["From"]
        message["From"] = "MAILER-DAEMON"
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a detector choking on odd mail means "not recognised", nothing more
        return []
    failures = []
    for raw_email, klass in [*((e, None) for e in sorted(permanent)), *((e, DELAYED) for e in sorted(temporary))]:
        email = clean_address(raw_email.decode("ascii", errors="replace"))
        if not email:
            continue
        words = " ".join(_around(text, email).split())
        status = status_in(words)
        failures.append(Failure(email, klass or classify(status, words), status, words[:2000]))
    return failures


BOUNCE_SUBJECT = _any(
    r"undeliver",
    r"returned mail",
    r"delivery (status )?(failure|notification|report|problem)",
    r"failure notice",
    r"delivery failed",
    r"could not be delivered",
    r"non.?deliver",
    r"delivery has failed",
    r"mail delivery",
    r"not delivered",
    r"returned to sender",
    r"delivery status",
    r"mail system error",
    r"rejected",
    r"failed delivery",
    r"mail error",
    r"メールエラー",
)
# Where a plain-text bounce quotes the original; the server's words come before it.
ORIGINAL_STARTS = re.compile(
    r"^\s*(-+ ?(original message|unsent message|this is a copy|below this line|"
    r"the header of the original)|received: |original message follows)",
    re.I | re.M,
)
TEXT_ADDRESS = re.compile(r"<?([A-Za-z0-9._%+=-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+)>?")


def _subject(message: Message) -> str:
    try:
        return str(make_header(decode_header(str(message.get("Subject", "")))))
    except (ValueError, LookupError, UnicodeError):
        return str(message.get("Subject", ""))


def _plain_text(message: Message, text: str) -> list[Failure]:
    """What flufl does not know: a delivery daemon's mail naming a failed address in its text (or,
    naming none, in the returned original's To:), with an error status or words near it."""
    if not (DAEMON.search(str(message.get("From", ""))) or BOUNCE_SUBJECT.search(_subject(message))):
        return []
    head = text[: match.start()] if (match := ORIGINAL_STARTS.search(text)) else text
    own = {
        a.lower()
        for _, a in getaddresses([str(v) for n in ("From", "To", "Reply-To", "Sender") for v in message.get_all(n, [])])
    }
    candidates = [a.lower() for a in TEXT_ADDRESS.findall(head)]
    candidates = [a for a in dict.fromkeys(candidates) if a not in own and not DAEMON.search(a.partition("@")[0])]
    candidates = candidates[:MAX_RECIPIENTS]
    if not candidates:
        originals = _original_headers(message)
        if match and not originals:  # the original quoted inline, after the marker line
            originals = [message_from_string(text[match.end() :].partition("\n")[2].lstrip(), policy=policy.compat32)]
        addresses = [
            clean_address(a) for h in originals for _, a in getaddresses([str(v) for v in h.get_all("To", [])])
        ]
        candidates = [a for a in addresses if a][:1]
    failures = []
    for email in dict.fromkeys(clean_address(c) for c in candidates):
        words = " ".join(_around(head, email).split())
        status = status_in(words)
        if email and (status or HARD_WORDS.search(words) or STRONG_POLICY.search(words)):
            failures.append(Failure(email, classify(status, words), status, words[:2000]))
    return failures[:1] if len(failures) > 1 and not _lists_addresses(head) else failures


def _lists_addresses(head: str) -> bool:
    """Several failed addresses are reported one per line; otherwise extra matches are noise."""
    return len(re.findall(r"^\s*<?[^\s@<>]+@[^\s<>]+>?:?\s*$", head, re.M)) > 1


def read(raw: bytes) -> Report:
    """What one inbound message reports; raises Refused for mail not worth parsing."""
    message = parse(raw)
    text = _text(message)
    context = {
        "message_ids": _message_ids(message, text),
        "addressed_to": _addressed_to(message),
        "subject": str(message.get("Subject", "")),
    }
    if (complaints := _arf(message)) is not None:
        return Report("complaint", tuple(complaints), note="ARF feedback report", **context)
    if failures := _dsn_failures(message):
        return Report("bounce", tuple(_dedupe(failures)), note="DSN", **context)
    if _auto_reply(message):
        return Report("none", note="auto-reply", **context)
    if failures := _flufl(message, text, raw):
        return Report("bounce", tuple(_dedupe(failures)), note="flufl.bounce", **context)
    if failures := _plain_text(message, text):
        return Report("bounce", tuple(failures), note="plain-text bounce", **context)
    return Report("none", note="not a bounce", **context)


def _dedupe(failures: list[Failure]) -> list[Failure]:
    seen: dict[str, Failure] = {}
    for failure in failures:
        seen.setdefault(failure.email, failure)
    return list(seen.values())
