"""Feeds: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by hand; polled with conditional
GET, backing off exponentially while a feed fails. A bad entry is refused on its own and never
blocks its siblings."""

import calendar
import html.entities
import io
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax import SAXParseException

import feedparser
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import jobs
from ..models import Article, IngestRejection, Source
from . import articles, fetch
from .cleaning import decode_bytes, html_to_text

log = logging.getLogger("newsdigest.ingest")

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
               "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5")
POLL_TASK_NAME = "newsdigest: poll feeds"
# Encoding mismatches feedparser recovers from by itself; they lose nothing.
_HARMLESS_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_XML_DECLARATION_ENCODING = re.compile(r"""\A(<\?xml[^>]*?)\s+encoding\s*=\s*["'][^"']*["']""")
_NAMED_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_ROOT_ELEMENT = re.compile(r"<[A-Za-z]")
_ENTRY_TAG = re.compile(r"<(?:[\w.-]+:)?(?:item|entry)[\s>/]")


class FeedError(Exception):
    """The document is not a feed we can read at all."""


@dataclass
class Entry:
    guid: str
    title: str = ""
    link: str = ""
    author: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    html: str = ""
    text: str = ""


@dataclass
class PollReport:
    source: Source
    new: int = 0
    updated: int = 0
    known: int = 0
    rejected: int = 0
    not_modified: bool = False
    skipped: bool = False
    error: str = ""
    article_ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        if self.error:
            return f"{self.source}: failed ({self.error})"
        if self.skipped:
            return f"{self.source}: not due"
        if self.not_modified:
            return f"{self.source}: not modified"
        return f"{self.source}: {self.new} new, {self.updated} updated, {self.known} known, {self.rejected} refused"


def _struct_time(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC) if value else None
    except (OverflowError, ValueError, TypeError):
        return None


def _json_feed(body: bytes) -> list[Entry]:
    try:
        doc = json.loads(decode_bytes(body))
    except json.JSONDecodeError as exc:
        raise FeedError(f"invalid JSON ({exc})") from exc
    except RecursionError as exc:
        raise FeedError("JSON is nested too deeply to be a feed") from exc
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise FeedError("JSON document is not a JSON Feed (no https://jsonfeed.org/version/ version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedError("JSON Feed has no items list")
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            item = {}
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        names = [a.get("name", "") for a in authors if isinstance(a, dict)]
        link = _http_url(_str(item.get("url")) or _str(item.get("external_url")))
        entries.append(Entry(
            guid=str(item.get("id") or link or f"#{index}"), title=_str(item.get("title")), link=link,
            author=", ".join(n for n in names if isinstance(n, str) and n),
            published=articles.parse_date(_str(item.get("date_published"))),
            updated=articles.parse_date(_str(item.get("date_modified"))),
            html=_str(item.get("content_html")) or _str(item.get("summary")) if not item.get("content_text") else "",
            text=_str(item.get("content_text")),
        ))
    return entries


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _http_url(link: str) -> str:
    """Entry links that are not absolute http(s) URLs (javascript:, a bare permalink GUID) are no links."""
    return link.strip() if link.strip().lower().startswith(("http://", "https://")) else ""


def _html_entity_references(text: str) -> str:
    """HTML named entities (&nbsp;, &eacute;) as numeric references: XML defines only five, and a feed
    written with HTML's would otherwise fail the strict parser and be reported malformed on every poll,
    although nothing in it is lost."""
    def reference(match: re.Match) -> str:
        value = html.entities.html5.get(match.group(1) + ";")
        if match.group(1) in _XML_ENTITIES or value is None:
            return match.group(0)
        return "".join(f"&#{ord(char)};" for char in value)

    return _NAMED_ENTITY.sub(reference, text)


def _as_utf8(body: bytes, charset: str | None) -> str:
    """The document as text: the HTTP charset when it decodes, else BOM, XML declaration, UTF-8 or a
    detected charset (cleaning.decode_bytes); the XML declaration's own encoding is dropped, since the
    text is handed on as UTF-8."""
    text = decode_bytes(body, charset)
    return _XML_DECLARATION_ENCODING.sub(r"\1", text, count=1)


def parse_feed(body: bytes, headers: dict[str, str] | None = None) -> tuple[list[Entry], str]:
    """Entries of a feed document, plus a warning when it was malformed but partly readable.

    `headers` are the HTTP response headers (lower-case names): their Content-Type charset is used."""
    headers = headers or {}
    content_type = headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    head = body.lstrip()[:1]
    if "json" in media_type or head in (b"{", b"["):
        return _json_feed(body), ""
    text = _as_utf8(body, fetch.FetchResult(url="", status=200, headers=headers).charset)
    root = _ROOT_ELEMENT.search(text)
    if "<!entity" in text[:root.start() if root else len(text)].lower():
        # feedparser expands entities declared in the DOCTYPE, its lenient parser without limit: 4 KB of
        # declarations become a million characters, 100 KB cost seconds and gigabytes. Feeds never need them.
        raise FeedError("the document declares its own XML entities (<!ENTITY>), which can expand a small "
                        "feed to gigabytes; refused unread")
    # Unsanitised: html_to_text drops scripts, iframes and their content; feedparser's sanitiser keeps the
    # inner text of the elements it removes. BytesIO: given bytes, feedparser tries them as a file name.
    document = _html_entity_references(text)
    parsed = feedparser.parse(
        io.BytesIO(document.encode("utf-8")), sanitize_html=False,
        response_headers={**headers, "content-type": f"{media_type or 'application/xml'}; charset=utf-8"})
    problem = parsed.get("bozo_exception") if parsed.bozo else None
    if isinstance(problem, _HARMLESS_BOZO):
        problem = None
    if not parsed.get("version") and not parsed.entries:
        if b"<html" in body[:4096].lower():
            raise FeedError("not a feed: the server sent an HTML page")
        raise FeedError(f"not a feed: {problem or 'no RSS, Atom or JSON Feed document found'}")
    entries = []
    for index, item in enumerate(parsed.entries):
        content = item.get("content") or []
        markup = content[0].get("value", "") if content else item.get("summary", "")
        link = _http_url(item.get("link", ""))
        entries.append(Entry(
            guid=item.get("id") or link or f"#{index}", title=html_to_text(item.get("title", "")) or "",
            link=link, author=item.get("author", ""),
            # dict.get: FeedParserDict.get would alias updated to published with a deprecation warning.
            published=_struct_time(dict.get(item, "published_parsed") or dict.get(item, "updated_parsed")),
            updated=_struct_time(dict.get(item, "updated_parsed")), html=markup,
        ))
    return entries, _malformed_warning(problem, len(entries), document) if problem else ""


def _malformed_warning(problem: Exception, read: int, document: str) -> str:
    """What was read and what was lost: the entries the lenient parser recovered against the entry tags
    in the document, and from which entry on the text may be cut or garbled (the one holding the error)."""
    starts = [match.start() for match in _ENTRY_TAG.finditer(document)]
    found = max(len(starts), read)
    lost = f"{found - read} lost" if found > read else "none lost"
    first_suspect = 1
    if isinstance(problem, SAXParseException) and problem.getLineNumber():
        lines = document.split("\n")
        offset = sum(len(line) + 1 for line in lines[:problem.getLineNumber() - 1]) + problem.getColumnNumber()
        first_suspect = max(1, sum(1 for start in starts if start <= offset))
    return (f"feed is malformed ({problem}); read {read} of the {found} entries in it ({lost}); "
            f"entries from number {first_suspect} on may be incomplete")


def ingest_entry(entry: Entry, source: Source) -> articles.IngestResult:
    """One entry as an article. Entries without full text are completed from their page; a page that
    cannot be fetched falls back to the feed's own text when there is any."""
    text = entry.text or html_to_text(entry.html)
    article = {"title": entry.title, "text": text, "url": entry.link, "author": entry.author,
               "published_at": entry.published, "guid": entry.guid}
    if len(text) < settings.NEWSDIGEST_FEED_FULLTEXT_MIN_CHARS and entry.link:
        known = Article.objects.filter(guid=entry.guid, source=source).first()
        if known is not None and not (entry.updated and entry.updated > known.updated_at):
            # Already fetched once, and the feed does not say it changed: no second download.
            return articles.IngestResult(known, False)
        try:
            page = articles.fetch_page(entry.link)
        except articles.IngestError as exc:
            if not text:
                raise articles.IngestError(f"entry has no text and its page failed: {exc}") from exc
            log.info("%s: page of %s unavailable (%s); using the feed's text", source, entry.link, exc)
        else:
            if len(page["text"]) > len(text):
                article.update(text=page["text"], canonical_url=page["canonical_url"],
                               language=page["language"], title=entry.title or page["title"],
                               author=entry.author or page["author"],
                               published_at=entry.published or page["published_at"])
    if not article["text"]:
        raise articles.IngestError("entry has neither text nor a link")
    return articles.ingest_article(source=source, **article)


def _backoff(source: Source, errors: int) -> timedelta:
    minutes = min(source.poll_interval_minutes * 2 ** min(errors, 20), settings.NEWSDIGEST_FEED_BACKOFF_MAX_MINUTES)
    return timedelta(minutes=minutes)


def _failed(report: PollReport, reason: str) -> PollReport:
    source, now = report.source, timezone.now()
    reason = articles.record_rejection(source, source.url, reason).reason
    Source.objects.filter(pk=source.pk).update(error_count=F("error_count") + 1, last_error=reason, last_polled_at=now)
    source.refresh_from_db()
    source.next_poll_at = now + _backoff(source, source.error_count)
    source.save(update_fields=["next_poll_at"])
    report.error = reason
    return report


def _succeeded(source: Source, etag: str, last_modified: str) -> None:
    now = timezone.now()
    source.error_count, source.last_error, source.last_polled_at = 0, "", now
    source.next_poll_at = now + timedelta(minutes=source.poll_interval_minutes)
    source.etag, source.last_modified = etag[:500], last_modified[:100]
    source.save(update_fields=["error_count", "last_error", "last_polled_at", "next_poll_at", "etag",
                               "last_modified"])


def _claim(source: Source, now: datetime) -> bool:
    """Only one poller per due feed: the first to push next_poll_at forward wins."""
    due = Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
    lease = now + timedelta(minutes=source.poll_interval_minutes)
    return bool(Source.objects.filter(due, pk=source.pk).update(next_poll_at=lease))


def _report_once(source: Source, reason: str) -> None:
    """Record a feed-level warning unless the feed's latest warnings already say it: an unchanged
    malformed or oversized feed is reported once, not on every poll (a feed can carry both warnings)."""
    latest = IngestRejection.objects.filter(source=source, target=source.url[:2000]).order_by("-pk")
    if reason not in latest.values_list("reason", flat=True)[:2]:
        articles.record_rejection(source, source.url, reason)


def poll_source(source: Source, *, force: bool = False) -> PollReport:
    """Fetch, parse and ingest one feed. Whatever the feed or its server does, the outcome is a report
    and a recorded error, never an exception: one bad feed must not stop `feeds poll` for the others."""
    report = PollReport(source)
    if not force and not _claim(source, timezone.now()):
        report.skipped = True
        return report
    try:
        return _poll(source, report)
    except Exception as exc:  # noqa: BLE001 - recorded on the feed; the poll of the other feeds goes on
        log.exception("unexpected error polling %s", source)
        return _failed(report, f"{source.url}: unexpected {type(exc).__name__}: {exc}")


def _poll(source: Source, report: PollReport) -> PollReport:
    try:
        response = fetch.fetch(source.url, etag=source.etag, last_modified=source.last_modified, accept=FEED_ACCEPT)
    except fetch.FetchError as exc:
        return _failed(report, str(exc))
    if response.not_modified:
        _succeeded(source, source.etag, source.last_modified)
        report.not_modified = True
        return report
    try:
        entries, warning = parse_feed(response.body, response.headers)
    except FeedError as exc:
        return _failed(report, f"{source.url}: {exc}")
    if warning:
        _report_once(source, warning)
    limit = settings.NEWSDIGEST_FEED_MAX_ENTRIES
    if len(entries) > limit:
        _report_once(source, f"feed has {len(entries)} entries; read the first {limit} and refused the other "
                             f"{len(entries) - limit}")
    for index, entry in enumerate(entries[:limit]):
        _ingest_one(report, entry, index)
    _succeeded(source, response.headers.get("etag", ""), response.headers.get("last-modified", ""))
    return report


def _ingest_one(report: PollReport, entry: Entry, index: int) -> None:
    target = entry.link or f"{report.source.url}#entry-{index}"
    try:
        with transaction.atomic():
            result = ingest_entry(entry, report.source)
            articles.queue_summary(result)
    except articles.IngestError as exc:
        articles.record_rejection(report.source, target, f"entry {entry.guid!r}: {exc}")
        report.rejected += 1
        return
    except Exception as exc:  # noqa: BLE001 - one broken entry must not block its siblings
        log.exception("unexpected error on entry %r of %s", entry.guid, report.source)
        articles.record_rejection(report.source, target,
                                  f"entry {entry.guid!r}: unexpected {type(exc).__name__}: {exc}")
        report.rejected += 1
        return
    if result.created:
        report.new += 1
        report.article_ids.append(result.article.pk)
    elif result.updated:
        report.updated += 1
        report.article_ids.append(result.article.pk)
    else:
        report.known += 1


def due_source_ids(now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    due = Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
    return list(Source.objects.filter(due, kind=Source.Kind.FEED, active=True).order_by("pk")
                .values_list("pk", flat=True))


def poll_source_id(source_id: int, force: bool = False) -> PollReport | None:
    source = Source.objects.filter(pk=source_id, kind=Source.Kind.FEED).first()
    return poll_source(source, force=force) if source is not None else None


def add_feed(url: str, name: str = "", newsletter=None) -> tuple[Source, bool]:
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise FeedError(f"not an http(s) URL: {url}") from exc
    source, created = Source.objects.get_or_create(
        url=url, kind=Source.Kind.FEED,
        defaults={"name": name or (url.split("//", 1)[1].split("/", 1)[0]), "newsletter": newsletter})
    ensure_poll_schedule()
    return source, created


def ensure_poll_schedule():
    """The celery-beat entry that polls due feeds; created once, idempotent."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval, _ = IntervalSchedule.objects.get_or_create(
        every=settings.NEWSDIGEST_FEED_POLL_EVERY_MINUTES, period=IntervalSchedule.MINUTES)
    task, _ = PeriodicTask.objects.update_or_create(
        name=POLL_TASK_NAME, defaults={"task": jobs.Job.POLL_FEEDS.value, "interval": interval, "enabled": True})
    return task
