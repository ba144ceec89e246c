"""Ingest stage: files, URLs, feeds and API posts become clean Article rows, each story stored once.

Identity of an article: its canonical URL, else its feed GUID (per source), else its text.
The same input twice is a no-op; the same URL/GUID with new text updates the row in place
(status back to new, so it is summarized again). Near-duplicates (MinHash/LSH, worker/dedup.py)
stay separate rows but share one Story.

Dates: a missing date stays empty (the digest then orders by ingestion time); a date in the
future is clamped to now, since it is either a wrong time zone or an embargo we cannot honour.

Every refusal is logged on "newsdigest.ingest" and stored as an IngestRejection.
"""

import email
import email.policy
import email.utils
import glob
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import trafilatura
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from lxml import etree

from . import dedup, fetch
from .cleaning import clean_text, decode_bytes, html_to_text, normalise_text
from .models import Article, IngestRejection, Source, transition

log = logging.getLogger("newsdigest.ingest")

SUPPORTED_SUFFIXES = {".txt", ".md", ".html", ".htm", ".json", ".eml"}


class IngestError(ValueError):
    """The input cannot become an article; the message says why."""


@dataclass
class IngestResult:
    article: Article
    created: bool
    # Same URL/GUID, new text: the row was rewritten and must be summarized again.
    updated: bool = False

    @property
    def needs_summary(self) -> bool:
        return self.created or self.updated


def content_hash(text: str) -> str:
    folded = " ".join(text.lower().split())
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def record_rejection(source: Source | None, target: str, reason: str) -> IngestRejection:
    """Log and keep one refusal; admins see it under Ingest rejections."""
    log.warning("refused %s from %s: %s", target, source or "no source", reason)
    return IngestRejection.objects.create(source=source, target=str(target)[:2000], reason=reason)


def queue_summary(result: IngestResult) -> None:
    """Summarize a new or changed article once the transaction that stored it has committed."""
    from . import tasks

    if result.needs_summary:
        tasks.enqueue_after_commit(tasks.summarize_article, result.article.pk)


def extract_html(html: str, url: str = "") -> dict:
    """Main text and metadata of an article page, without navigation and footer cruft.

    trafilatura first; pages it finds no article in (short newsletters, bare fragments) fall
    back to the whole visible text."""
    # No extensive date search: it takes a footer's "© 2025" for 1 Jan 2025. Undated stays undated.
    doc = trafilatura.bare_extraction(html, url=url or None, with_metadata=True, favor_precision=True,
                                      date_extraction_params={"extensive_search": False, "original_date": True})
    meta = (doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)) if doc is not None else {}
    # trafilatura separates paragraphs with single newlines; ours are blank lines.
    text = (meta.get("text") or "").replace("\n", "\n\n")
    title = meta.get("title") or ""
    page_title, page_language = _html_title_and_language(html)
    if not text.strip():
        text = html_to_text(html)
        title = title or page_title
    if not text.strip():
        raise IngestError("no article text found in the HTML")
    return {
        "title": title,
        "author": meta.get("author") or "",
        "text": text,
        "url": meta.get("url") or url,
        "published_at": meta.get("date"),
        "language": meta.get("language") or page_language,
    }


def _html_title_and_language(html: str) -> tuple[str, str]:
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return "", ""
    title = " ".join((root.findtext(".//title") or "").split())
    return title, (root.get("lang") or "").strip().split("-")[0].lower()[:16]


def parse_date(value) -> datetime | None:
    """An aware datetime from ISO 8601, RFC 2822 or a datetime; None when absent or unreadable."""
    if not value:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            parsed = parse_datetime(text) or datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _clamped(published: datetime | None) -> datetime | None:
    now = timezone.now()
    return now if published is not None and published > now else published


def _drop_title_line(text: str, title: str) -> str:
    """Extractors often repeat the headline as the first paragraph."""
    first, _, rest = text.partition("\n\n")
    return rest if rest and first.strip().lower() == title.strip().lower() else text


def _same_article(canonical: str, guid: str, source: Source | None) -> Article | None:
    match = Q(pk__in=[])
    if canonical.startswith(("http://", "https://")):
        match |= Q(canonical_url=canonical)
    if guid:
        match |= Q(guid=guid, source=source)
    return Article.objects.filter(match).order_by("pk").first()


def ingest_article(
    *, title: str, text: str, url: str = "", author: str = "", published_at=None,
    language: str = "", source: Source | None = None, guid: str = "", canonical_url: str = "",
) -> IngestResult:
    """Store one article; the same input again is a no-op, the same URL/GUID with new text an update."""
    author = " ".join(str(author or "").split())[:300]
    title = " ".join(normalise_text(title or "").split())
    text = clean_text(text or "", author)
    if title:
        text = _drop_title_line(text, title)
    if not text:
        raise IngestError("article has no text")
    limit = settings.NEWSDIGEST_MAX_ARTICLE_CHARS
    if len(text) > limit:
        raise IngestError(f"article text is {len(text)} characters, over the limit of {limit}")
    if not title:
        title = text.split("\n", 1)[0][:120]
    canonical = dedup.canonical_url(canonical_url or url)[:2000]
    digest = content_hash(text)
    fields = {
        "title": title[:500], "text": text, "url": url.strip()[:2000], "canonical_url": canonical,
        "author": author, "published_at": _clamped(parse_date(published_at)), "language": language[:16],
        "content_hash": digest, "guid": guid[:1000],
    }
    with transaction.atomic():
        same = _same_article(canonical, fields["guid"], source)
        if same is not None and same.content_hash == digest:
            return IngestResult(same, False)
        if twin := Article.objects.filter(content_hash=digest).first():
            return IngestResult(twin, False)
        if same is not None:
            return _update(same, fields)
        try:
            with transaction.atomic():
                article = Article.objects.create(source=source, **fields)
        except IntegrityError:
            # Another worker stored the same text between our check and insert.
            return IngestResult(Article.objects.get(content_hash=digest), False)
        dedup.index_article(article)
    return IngestResult(article, True)


def _update(article: Article, fields: dict) -> IngestResult:
    changed = {k: v for k, v in fields.items() if k not in {"guid", "canonical_url"} or v}
    Article.objects.filter(pk=article.pk).update(**changed)
    transition(Article.objects.filter(pk=article.pk), from_status=list(Article.Status), to_status=Article.Status.NEW,
               last_error="")
    article.refresh_from_db()
    dedup.index_article(article)
    log.info("article %s changed; updated in place and queued for a new summary", article.pk)
    return IngestResult(article, False, updated=True)


def ingest_record(record: dict, source: Source | None = None) -> IngestResult:
    """One JSON object {title, text | content | html, url?, author?, published_at?, language?}."""
    if not isinstance(record, dict):
        raise IngestError("each JSON article must be an object")
    text, title, html = record.get("text") or record.get("content") or "", record.get("title") or "", record.get("html")
    for name, value in (("title", title), ("text", text), ("html", html or "")):
        if not isinstance(value, str):
            raise IngestError(f"{name} must be a string, not {type(value).__name__}")
    for name in ("url", "author", "published_at", "language", "guid"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise IngestError(f"{name} must be a string, not {type(record[name]).__name__}")
    if record.get("published_at") and parse_date(record["published_at"]) is None:
        raise IngestError(f"published_at is not a date: {record['published_at']!r}")
    url = record.get("url") or ""
    if url and not url.lower().startswith(("http://", "https://")):
        raise IngestError(f"url must be http or https: {url!r}")
    meta = {"author": record.get("author") or "", "published_at": record.get("published_at"),
            "language": record.get("language") or ""}
    if html and not text:
        extracted = extract_html(html, url)
        text, title = extracted["text"], title or extracted["title"]
        meta = {k: meta[k] or extracted[k] for k in meta}
    if not text.strip():
        raise IngestError("article has no text (give text or html)")
    return ingest_article(title=title, text=text, url=url, guid=record.get("guid") or "", source=source, **meta)


def _ingest_email(data: bytes) -> dict:
    """A newsletter forwarded as .eml: subject is the title, From the author, Date the date."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(preferencelist=("html", "plain"))
    if body is None:
        raise IngestError("email has no text or HTML part")
    raw = body.get_payload(decode=True) or b""
    content = decode_bytes(raw, body.get_content_charset())
    if body.get_content_type() == "text/html":
        extracted = extract_html(content)
        text = extracted["text"]
    else:
        text = content
    sender_name, sender_address = email.utils.parseaddr(str(message.get("From", "")))
    subject = str(message.get("Subject", "")).strip()
    for prefix in ("fwd:", "fw:"):
        if subject.lower().startswith(prefix):
            subject = subject[len(prefix):].strip()
    return {"title": subject, "text": text, "author": sender_name or sender_address,
            "published_at": message.get("Date")}


def ingest_file(path: Path, source: Source | None = None) -> list[IngestResult]:
    """Articles of one file. A bad record of a JSON list is refused (recorded) without blocking the rest;
    a file that cannot be read as a whole raises IngestError."""
    path = Path(path)
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(f"{path.name}: unsupported file type {suffix or '(none)'}; "
                          f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError(f"{path.name}: binary file, not text")
    if suffix == ".eml":
        return [ingest_article(source=source, **_ingest_email(data))]
    if suffix == ".json":
        try:
            payload = json.loads(decode_bytes(data))
        except json.JSONDecodeError as exc:
            raise IngestError(f"{path.name}: invalid JSON ({exc})") from exc
        if not isinstance(payload, list):
            return [ingest_record(payload, source)]
        results = []
        for index, record in enumerate(payload):
            try:
                results.append(ingest_record(record, source))
            except IngestError as exc:
                record_rejection(source, f"{path}[{index}]", str(exc))
        return results
    text = decode_bytes(data)
    if suffix in {".html", ".htm"}:
        extracted = extract_html(text)
        return [ingest_article(source=source, canonical_url=extracted.pop("url"), **extracted)]
    # Plain text / markdown: the first non-empty line is the title.
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise IngestError(f"{path.name}: file is empty")
    title = lines[first].strip().lstrip("#").strip()
    return [ingest_article(title=title, text="\n".join(lines[first + 1:]), source=source)]


def fetch_page(url: str) -> dict:
    """Fetch (safely) and extract one article page; the dict fits ingest_article."""
    try:
        page = fetch.fetch(url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
    except fetch.FetchError as exc:
        raise IngestError(str(exc)) from exc
    if page.content_type and not (page.content_type.startswith("text/") or "html" in page.content_type):
        raise IngestError(f"{page.url}: not a web page ({page.content_type})")
    extracted = extract_html(decode_bytes(page.body, page.charset), page.url)
    extracted["canonical_url"] = extracted.pop("url") or page.url
    extracted["url"] = page.url
    return extracted


def ingest_url(url: str, source: Source | None = None) -> IngestResult:
    return ingest_article(source=source, **fetch_page(url))


def expand_paths(targets: list[str]) -> list[Path]:
    """Files named directly, or every supported file inside a named directory."""
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES))
        elif path.exists():
            found.append(path)
        else:
            found.extend(sorted(Path(p) for p in glob.glob(target, recursive=True) if Path(p).is_file()))
    return found
