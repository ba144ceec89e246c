"""Reader signals: signed click redirects, scanner filtering and aggregate click counts.

Every story link of a tracked newsletter's email points at `/r/<token>` (worker/web/clicks.py), where
the token signs (digest item, mailed URL). The redirect goes to that URL and nowhere else; a token that
does not verify gets a 400 page. The token names no subscriber, so the email is still rendered once per digest.

Per recipient the link only gains a query made by `click_query`: a coarse delivery stamp (so hits
within seconds of delivery, the signature of mail scanners, are not counted) and, only when the
newsletter turns `click_history` on, a signed subscriber id.

The request path does no counting: it appends one event to a buffer (a Redis list, or one INSERT
into PendingClick in the embedded default) and redirects. `flush` (a beat task) judges the buffered
events as a batch, so patterns that span requests (one client opening every link within a second)
can be seen, and adds them to ClickCount. The client fingerprint used for that (a keyed hash of
address and agent) and the user agent live only in the buffer, for seconds; nothing per reader is
stored unless the newsletter asks for it. Only cheap checks run on the request path.

    hit --record--> buffer --flush (batch, held BURST_SECONDS)--> ClickCount.clicks | ClickCount.filtered
"""

import atexit
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import redis
from crawlerdetect import CrawlerDetect
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, F, Sum
from django.http import HttpRequest
from django.urls import reverse

from . import tokens
from .broker import redis_client
from .models import ClickCount, Delivery, Digest, DigestItem, PendingClick, ReaderClick, Subscriber

log = logging.getLogger("newsdigest.clicks")

BUFFER_KEY = "newsdigest:clicks"
LOCK_KEY = "newsdigest:clicks:flush-lock"
# Most hits one RPUSH carries from a process's queue to Redis.
SEND_BATCH = 500
# Delivery stamps are this coarse (seconds): enough to tell a scanner's instant fetch from a reader.
STAMP_STEP = 5
# Digests whose links count: a draft's or a test message's links are clicked by editors, not readers.
COUNTED_STATES = (Digest.Status.SENDING, Digest.Status.PAUSED, Digest.Status.SENT)
# Email security gateways and link pre-fetchers that crawlerdetect's list does not name.
_SCANNER_AGENTS = re.compile(
    r"safelinks|safe links|proofpoint|urldefense|mimecast|barracuda|symantec|messagelabs|trend ?micro|"
    r"forcepoint|sophos|fortinet|fortiguard|cisco|ironport|zscaler|checkpoint|avanan|vade|hornet|"
    r"google-safety|googleimageproxy|yahoomailproxy|microsoft office|ms-office|outlook-ios|"
    r"scanner|preview|prefetch|headless", re.IGNORECASE)
_crawlers = CrawlerDetect()
_URL = re.compile(r"https?://[^\s\"'<>()\\`]+")


# --- links -----------------------------------------------------------------------------------------

def safe_url(url: str) -> str:
    """Only http(s) links reach an email; anything else (javascript:, data:) becomes no link."""
    url = (url or "").strip()
    return url if _URL.fullmatch(url) and urlsplit(url).netloc else ""


def tracked_url(item_id: int, url: str) -> str:
    """The redirect that leads to `url` for this digest item; the same for every recipient."""
    token = tokens.sign_object(tokens.Purpose.CLICK, [item_id, url])
    return settings.SITE_URL + reverse("click", args=[token])


def open_token(token: str) -> tuple[int, str]:
    """(item id, URL) of a genuine token; tokens.BadToken for anything forged or damaged."""
    try:
        value = tokens.unsign_object(tokens.Purpose.CLICK, token)
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # undecodable payload
        raise tokens.BadToken(str(exc)) from None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], int)
            or not isinstance(value[1], str) or not safe_url(value[1])):
        raise tokens.BadToken("not a click token")
    return value[0], value[1]


def click_query(tracking: bool, sent_at: datetime | None = None, subscriber: Subscriber | None = None,
                history: bool = False) -> str:
    """What one recipient's copy appends to each tracked link: the delivery stamp, and the reader
    only when the newsletter keeps click history. Empty for the archive and untracked newsletters."""
    if not tracking:
        return ""
    parts = []
    if sent_at is not None:
        parts.append(f"t={int(sent_at.timestamp()) // STAMP_STEP:x}")
    if history and subscriber is not None:
        parts.append(f"r={tokens.sign(tokens.Purpose.CLICK_READER, str(subscriber.pk))}")
    return "?" + "&".join(parts) if parts else ""


# --- request path ----------------------------------------------------------------------------------

def agent_is_scanner(agent: str) -> bool:
    """The cheap test, on the request path: no agent, or a mail-security product's name."""
    return not agent.strip() or bool(_SCANNER_AGENTS.search(agent))


def agent_is_crawler(agent: str) -> bool:
    """crawlerdetect's ~1,500 patterns: a millisecond for an agent it has not seen (it caches 1,024),
    so it runs in the flush, off the request path."""
    return _crawlers.is_crawler(agent)


def _client(request: HttpRequest, agent: str) -> str:
    """A keyed hash of address and agent: groups one client's hits within a flush, and means nothing
    without the server's key. Never stored outside the buffer."""
    key = hashlib.sha256(f"{settings.SECRET_KEY}|{tokens.Purpose.CLICK.value}".encode()).digest()
    seen = f"{request.META.get('REMOTE_ADDR', '')}|{agent}".encode()
    return hashlib.blake2b(seen, key=key[:32], digest_size=8).hexdigest()


_redis: tuple[str, redis.Redis] | None = None


def _redis_client() -> redis.Redis:
    """One client (and connection pool) per process, remade if the settings name another server."""
    global _redis
    if _redis is None or _redis[0] != settings.REDIS_URL:
        _redis = (settings.REDIS_URL, redis_client(settings.REDIS_URL, timeout=0.5))
    return _redis[1]


class _Sender:
    """Hits wait in process memory; one daemon thread per process moves whatever has piled up to Redis
    in a single RPUSH, so a redirect never waits for a round trip. Lost on a crash: a few
    milliseconds of counts, never a reader's redirect."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.pid = 0
        self.lock = threading.Lock()
        self.unsent = 0  # queued or in the thread's hands, not yet in Redis

    def add(self, event: dict) -> None:
        if self.pid != os.getpid():  # first hit in this process (or after a fork): start its thread
            with self.lock:
                if self.pid != os.getpid():
                    self.queue, self.unsent = queue.SimpleQueue(), 0
                    threading.Thread(target=self._run, name="click-sender", daemon=True).start()
                    self.pid = os.getpid()
        with self.lock:
            self.unsent += 1
        self.queue.put(json.dumps(event, separators=(",", ":")))

    def _take(self, block: bool) -> list[str]:
        batch = [self.queue.get()] if block else []
        while len(batch) < SEND_BATCH:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            self.send(self._take(block=True))

    def send(self, batch: list[str]) -> None:
        if not batch:
            return
        try:
            _redis_client().rpush(BUFFER_KEY, *batch)
        except (redis.RedisError, ValueError) as exc:  # ValueError: a REDIS_URL redis cannot parse
            # Logged, never raised: this runs on the process's one sender thread, and a dead thread
            # would lose every later click of the process.
            log.warning("%d clicks not counted: %s", len(batch), exc)
        finally:
            with self.lock:
                self.unsent -= len(batch)

    def drain(self) -> None:
        """Send what is still queued (at exit, and for tests that look at Redis at once)."""
        if self.pid == os.getpid():
            self.send(self._take(block=False))
            deadline = time.monotonic() + 2
            while self.unsent > 0 and time.monotonic() < deadline:  # a batch still in the thread's hands
                time.sleep(0.001)


_sender = _Sender()
atexit.register(_sender.drain)


def _push(event: dict) -> None:
    if settings.REDIS_URL:
        _sender.add(event)
    else:
        PendingClick.objects.create(event=event)


def record(request: HttpRequest, item_id: int, url: str) -> None:
    """Buffer one hit; never fails the redirect (a lost count is better than a lost reader)."""
    agent = request.META.get("HTTP_USER_AGENT", "")
    why = "head" if request.method == "HEAD" else ("agent" if agent_is_scanner(agent) else None)
    event = {"i": item_id, "u": url, "t": round(time.time(), 3), "c": _client(request, agent), "w": why,
             "a": "" if why else agent[:300], "s": request.GET.get("t", "")[:16], "r": request.GET.get("r", "")[:100]}
    try:
        _push(event)
    except (redis.RedisError, DatabaseError) as exc:
        log.warning("click on item %s not counted: %s", item_id, exc)


# --- judging a batch -------------------------------------------------------------------------------

def _stamp_time(stamp: str) -> float | None:
    try:
        return int(stamp, 16) * STAMP_STEP if stamp else None
    except ValueError:
        return None


def classify(events: list[dict], digest_of: dict[int, int | None]) -> list[str | None]:
    """Why each event is not a reader's click, or None for a reader's.

    `digest_of` maps item id -> digest id when the item's digest was really sent (None or absent:
    not counted). A burst is one client opening BURST_LINKS different links of one digest within
    BURST_SECONDS; every hit of the burst is a scanner's.
    """
    reasons: list[str | None] = []
    for event in events:
        sent = _stamp_time(event.get("s", ""))
        if event.get("w"):
            reasons.append(event["w"])
        elif event.get("a") and agent_is_crawler(event["a"]):
            reasons.append("agent")
        elif digest_of.get(event["i"]) is None:
            reasons.append("unsent")
        elif sent is not None and event["t"] - sent < settings.NEWSDIGEST_CLICK_SCANNER_SECONDS + STAMP_STEP:
            # The stamp rounds down by up to STAMP_STEP, so the window is widened by as much.
            reasons.append("soon")
        else:
            reasons.append(None)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if digest_of.get(event["i"]) is not None:
            groups[(event["c"], digest_of[event["i"]])].append(index)
    window = settings.NEWSDIGEST_CLICK_BURST_SECONDS
    for indexes in groups.values():
        indexes.sort(key=lambda i: events[i]["t"])
        start = 0
        for end in range(len(indexes)):
            while events[indexes[end]]["t"] - events[indexes[start]]["t"] > window:
                start += 1
            span = indexes[start:end + 1]
            if len({(events[i]["i"], events[i]["u"]) for i in span}) >= settings.NEWSDIGEST_CLICK_BURST_LINKS:
                for i in span:
                    reasons[i] = "burst"
    return reasons


# --- flush -----------------------------------------------------------------------------------------

@dataclass
class FlushReport:
    read: int = 0
    counted: int = 0
    filtered: int = 0
    held: int = 0


def _counted_digests(item_ids: set[int]) -> dict[int, int | None]:
    rows = DigestItem.objects.filter(pk__in=item_ids).values_list("pk", "digest_id", "digest__status")
    return {pk: digest_id if status in COUNTED_STATES else None for pk, digest_id, status in rows}


def _apply(events: list[dict], reasons: list[str | None]) -> FlushReport:
    """Add one judged batch to the counts (and to reader history where the newsletter keeps it)."""
    report = FlushReport(read=len(events))
    existing = set(DigestItem.objects.filter(pk__in={e["i"] for e in events}).values_list("pk", flat=True))
    counts: Counter = Counter()
    for event, reason in zip(events, reasons, strict=True):
        if event["i"] in existing:
            counts[(event["i"], event["u"], reason is None)] += 1
        report.counted += reason is None
        report.filtered += reason is not None
    for (item_id, url, reader), n in counts.items():
        ClickCount.objects.get_or_create(item_id=item_id, url=url)
        field = "clicks" if reader else "filtered"
        ClickCount.objects.filter(item_id=item_id, url=url).update(**{field: F(field) + n})
    history = set(DigestItem.objects.filter(pk__in=existing, digest__newsletter__click_history=True)
                  .values_list("pk", flat=True))
    readers = []
    for event, reason in zip(events, reasons, strict=True):
        if reason is None and event["i"] in history and event.get("r"):
            try:
                readers.append((int(tokens.unsign(tokens.Purpose.CLICK_READER, event["r"])), event))
            except (tokens.BadToken, ValueError):
                continue
    alive = set(Subscriber.objects.filter(pk__in={pk for pk, _ in readers}).values_list("pk", flat=True))
    ReaderClick.objects.bulk_create(
        ReaderClick(subscriber_id=pk, item_id=event["i"], url=event["u"],
                    created_at=datetime.fromtimestamp(event["t"]).astimezone())
        for pk, event in readers if pk in alive)
    return report


def _judge(events: list[dict], now: float) -> tuple[int, list[str | None]]:
    """How many of the oldest events are ready (older than the burst window) and their verdicts;
    the younger ones are context now and are judged whole by the next flush."""
    cutoff = now - settings.NEWSDIGEST_CLICK_BURST_SECONDS
    ready = 0
    while ready < len(events) and events[ready]["t"] <= cutoff:
        ready += 1
    if not ready:
        return 0, []
    reasons = classify(events, _counted_digests({e["i"] for e in events}))
    return ready, reasons[:ready]


def flush(limit: int = 20000, now: float | None = None) -> FlushReport:
    """Move buffered hits into the counts; one flush at a time."""
    now = time.time() if now is None else now
    if settings.REDIS_URL:
        _sender.drain()  # this process's own queued hits, if it also serves redirects
        client = _redis_client()
        with client.lock(LOCK_KEY, timeout=300, blocking_timeout=0) as locked:
            if not locked:
                return FlushReport()
            events = [json.loads(raw) for raw in client.lrange(BUFFER_KEY, 0, limit - 1)]
            ready, reasons = _judge(events, now)
            with transaction.atomic():
                report = _apply(events[:ready], reasons)
            # After the commit: a crash in between counts this batch twice rather than never.
            client.ltrim(BUFFER_KEY, ready, -1)
    else:
        with transaction.atomic():
            rows = list(PendingClick.objects.select_for_update().order_by("pk")[:limit])
            ready, reasons = _judge([row.event for row in rows], now)
            report = _apply([row.event for row in rows[:ready]], reasons)
            PendingClick.objects.filter(pk__in=[row.pk for row in rows[:ready]]).delete()
    report.held = len(events if settings.REDIS_URL else rows) - ready
    if report.read:
        log.info("clicks flushed: %d counted, %d filtered as scanners", report.counted, report.filtered)
    return report


# --- what editors see ------------------------------------------------------------------------------

def recipients(digest_ids: list[int]) -> dict[int, int]:
    rows = (Delivery.objects.filter(digest_id__in=digest_ids, status=Delivery.Status.SENT)
            .values_list("digest_id").annotate(n=Count("pk")))
    return dict(rows)


def _rate(clicks: int, sent: int) -> float | None:
    return round(100 * clicks / sent, 1) if sent else None


def item_stats(digest: Digest) -> dict[int, dict]:
    """Per story: reader clicks, filtered scanner hits, click-through (% of recipients)."""
    sent = recipients([digest.pk]).get(digest.pk, 0)
    rows = (ClickCount.objects.filter(item__digest=digest).values("item_id")
            .annotate(clicks=Sum("clicks"), filtered=Sum("filtered")))
    return {row["item_id"]: {**row, "ctr": _rate(row["clicks"], sent)} for row in rows}


def digest_totals(digest_ids: list[int]) -> dict[int, dict]:
    """Per digest: reader clicks, filtered hits, recipients and click-through."""
    sent = recipients(digest_ids)
    rows = dict((row["item__digest_id"], row) for row in
                ClickCount.objects.filter(item__digest_id__in=digest_ids).values("item__digest_id")
                .annotate(clicks=Sum("clicks"), filtered=Sum("filtered")))
    return {pk: {"clicks": rows.get(pk, {}).get("clicks", 0), "filtered": rows.get(pk, {}).get("filtered", 0),
                 "recipients": sent.get(pk, 0), "ctr": _rate(rows.get(pk, {}).get("clicks", 0), sent.get(pk, 0))}
            for pk in digest_ids}


def metric_samples() -> list[tuple[dict, float]]:
    """Clicks by newsletter and kind (reader / scanner), for /metrics."""
    rows = (ClickCount.objects.values("item__digest__newsletter__slug")
            .annotate(clicks=Sum("clicks"), filtered=Sum("filtered")).order_by("item__digest__newsletter__slug"))
    return [({"newsletter": row["item__digest__newsletter__slug"], "kind": kind}, row[key] or 0)
            for row in rows for kind, key in (("reader", "clicks"), ("scanner", "filtered"))]


def pending() -> int:
    """Hits waiting in the buffer."""
    if settings.REDIS_URL:
        _sender.drain()
        try:
            return int(_redis_client().llen(BUFFER_KEY))
        except redis.RedisError:
            return 0
    return PendingClick.objects.count()



def most_read(digest_ids: list[int]) -> dict[int, tuple[str, int]]:
    """Per digest: the headline of the story readers clicked most, and its clicks."""
    rows = (ClickCount.objects.filter(item__digest_id__in=digest_ids, clicks__gt=0)
            .values("item_id", "item__digest_id").annotate(n=Sum("clicks")).order_by("-n", "item_id"))
    best: dict[int, tuple[int, int]] = {}
    for row in rows:
        best.setdefault(row["item__digest_id"], (row["item_id"], row["n"]))
    items = DigestItem.objects.select_related("summary", "article").in_bulk([pk for pk, _ in best.values()])
    return {digest_id: (items[item_id].headline, n) for digest_id, (item_id, n) in best.items()}
