"""Ingest stage: files, URLs, feeds and API posts become clean Article rows, each story stored once.

Identity of an article: its canonical URL, else its feed GUID (per source), else its text.
The same input twice is a no-op; the same URL/GUID with new text updates the row in place
(status back to new, so it is summarized again). Near-duplicates (MinHash/LSH, worker/ingest/dedup.py)
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
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import readability
import trafilatura
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from lxml import etree

from .. import jobs
from ..models import Article, IngestRejection, Source
from ..text import split_sentences
from . import dedup, fetch
from .cleaning import clean_text, decode_bytes, html_to_text, normalise_text

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


# C0 controls but tab and newline, and DEL: never part of a URL, GUID, title or name, and NUL is refused
# by PostgreSQL in any text column.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _visible(value: str) -> str:
    """Control characters written out (\\x00), so a refusal that quotes hostile input can be stored."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))


def record_rejection(source: Source | None, target: str, reason: str) -> IngestRejection:
    """Log and keep one refusal; admins see it under Ingest rejections."""
    target, reason = _visible(target)[:2000], _visible(reason)
    log.warning("refused %s from %s: %s", target, source or "no source", reason)
    return IngestRejection.objects.create(source=source, target=target, reason=reason)


def queue_summary(result: IngestResult) -> None:
    """Summarize a new or changed article once the transaction that stored it has committed."""
    if result.needs_summary:
        jobs.enqueue_after_commit(jobs.Job.SUMMARIZE_ARTICLE, result.article.pk)


# trafilatura sometimes keeps only part of an article (it stops at an embedded widget) or only a notice
# standing before it. readability-lxml then gets a second opinion: its text wins when trafilatura's is
# under _SHORTFALL of it and mostly contained in it (_COVERAGE of trafilatura's 4-word shingles), or
# when trafilatura's is a short notice. Measured in bench/bench_extract.py.
_SHORTFALL, _COVERAGE, _NOTICE_MAX_CHARS = 0.5, 0.8, 1500
_NOTICE = re.compile(
    r"personal,? non-commercial use|\breprints?\b|order presentation-ready|subscribe (now )?to (continue|read)"
    r"|subscribers only|(sign|log) in to (continue|read)|enable javascript|accept (all )?cookies", re.IGNORECASE)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 4]) for i in range(max(1, len(words) - 3))}


def _second_opinion(html: str, text: str) -> str:
    """trafilatura's text, or readability's where trafilatura visibly lost the article."""
    try:
        readable = html_to_text(readability.Document(html).summary(html_partial=True))
    except (readability.readability.Unparseable, etree.ParserError, ValueError):
        return text
    if len(readable) <= len(text):
        return text
    if len(text) < _NOTICE_MAX_CHARS and _NOTICE.search(text):
        return readable
    ours = _shingles(text)
    if len(text) < _SHORTFALL * len(readable) and len(ours & _shingles(readable)) >= _COVERAGE * len(ours):
        return readable
    return text


def extract_html(html: str, url: str = "") -> dict:
    """Main text and metadata of an article page, without navigation and footer cruft.

    trafilatura first, with readability-lxml as a second opinion when trafilatura's text is short
    or a notice; pages neither finds an article in (short newsletters, bare fragments) fall back to
    the whole visible text."""
    # No extensive date search: it takes a footer's "© 2025" for 1 Jan 2025. Undated stays undated.
    doc = trafilatura.bare_extraction(html, url=url or None, with_metadata=True, favor_precision=True,
                                      date_extraction_params={"extensive_search": False, "original_date": True})
    meta = (doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)) if doc is not None else {}
    # trafilatura separates paragraphs with single newlines; ours are blank lines.
    text = (meta.get("text") or "").replace("\n", "\n\n")
    if text.strip():
        text = _second_opinion(html, text)
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
    """Store one article; the same input again is a no-op, the same URL/GUID with new text an update.

    Control characters are dropped from identifiers and labels (a stray NUL in a GUID must not lose the
    article); a URL holding one is refused, since no real URL does and its stripped form may be another page."""
    for name, value in (("url", url), ("canonical URL", canonical_url)):
        if _CONTROL.search(value or ""):
            raise IngestError(f"{name} contains control characters: {_visible(value)[:200]}")
    author = " ".join(_CONTROL.sub("", str(author or "")).split())[:300]
    guid = _CONTROL.sub("", guid or "")
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
        title = headline(text)
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
    # A new article needs no move: it is waiting for its summary already (and has no error to clear).
    Article.transition(article.pk, from_status=[Article.Status.SUMMARIZED, Article.Status.FAILED],
                       to_status=Article.Status.NEW, last_error="")
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
        except RecursionError as exc:
            raise IngestError(f"{path.name}: JSON is nested too deeply to be articles") from exc
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
    try:
        document = parse_text_document(text, markdown=suffix == ".md")
    except IngestError as exc:
        raise IngestError(f"{path.name}: {exc}") from exc
    return [ingest_article(source=source, **document)]


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
# Where the story was filed, not what it says: "WASHINGTON (Reuters) - ", "KABUL, Sept 6 (AP) — ",
# "DUBAI, United Arab Emirates — " (capitalised place and a dash), "Hong Kong (CNN Business) " (an agency).
_DATELINE = re.compile(
    r"^(?:[A-Z][A-Z .'/-]{1,40}(?:,[^()\n]{1,40})?\s*(?:\([^)\n]{1,30}\))?\s*[-–—]+\s+"
    r"|[A-Z][\w .,'/-]{1,40}\((?:AP|Reuters|AFP|UPI|dpa|Xinhua|Bloomberg|CNN[\w ]*|[\w ]*News[\w ]*)\)\s*[-–—]*\s*)"
    r"(?=\S)")
_TITLE_MAX_CHARS = 120
# A first sentence longer than this becomes a headline by cutting it at its first clause boundary
# between _CLAUSE_MIN and _CLAUSE_MAX characters, else at a word.
_HEADLINE_CHARS = 100
_CLAUSE_MIN, _CLAUSE_MAX = 45, 120
_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)|\s[-–—]\s")


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """`key: value` lines between `---` lines at the very top of a Markdown file (Jekyll/Hugo style),
    and the rest. Read as flat lines, not YAML: only title, date, url and author are used, unquoted
    colons in titles are common, and a YAML loader would expand alias bombs."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta = {}
    for line in match.group(1).splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() and not line[:1].isspace():
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            meta[key.strip().lower()] = value
    return meta, text[match.end():]


def _looks_like_title(paragraph: str) -> bool:
    """One short line of two words or more without a final full stop: a headline or a label, not a
    sentence of prose (nor a one-word dateline such as "Pittsburgh")."""
    line = paragraph.strip()
    return (len(line.split()) >= 2 and "\n" not in line and len(line) <= _TITLE_MAX_CHARS
            and not line.rstrip("\"'”’)").endswith((".", "!", ":", ";", ",")))


def headline(text: str) -> str:
    """A title for text that has none: its first sentence, without dateline, cut at a clause boundary
    when long (then at a word, marked with an ellipsis)."""
    # The first paragraph of prose: a lone word before it ("Pittsburgh") is a dateline or a label.
    lead = next((p for p in text.split("\n\n") if len(p.split()) > 3), text)
    first = next(iter(split_sentences(lead)), "").strip()
    first = _DATELINE.sub("", first).rstrip(" .")
    if len(first) <= _HEADLINE_CHARS:
        return first
    if clause := _CLAUSE_BREAK.search(first, _CLAUSE_MIN, _CLAUSE_MAX):
        return first[:clause.start()].rstrip()
    return first[:_HEADLINE_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def parse_text_document(text: str, *, markdown: bool = False) -> dict:
    """Title, body and metadata of a plain-text or Markdown article, as ingest_article takes them.

    The first line is the title only when it looks like one (a Markdown `#` heading, or a short line
    without a final full stop standing alone before a blank line); a section label standing before
    such a headline ("World News") is dropped. Otherwise every paragraph is body and the title is
    made from the first sentence: most wire copy saved as text has no headline line at all."""
    meta, text = _front_matter(text) if markdown else ({}, text)
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip()) if p.strip()]
    if not paragraphs:
        raise IngestError("file is empty")
    title = ""
    first_line, _, rest_of_first = paragraphs[0].strip().partition("\n")
    if markdown and re.match(r"#{1,6}\s", first_line):
        title = first_line.lstrip("#").strip()
        paragraphs[0] = rest_of_first
    elif len(paragraphs) > 1 and _looks_like_title(paragraphs[0]):
        if len(paragraphs) > 2 and len(paragraphs[0].split()) <= 3 and _looks_like_title(paragraphs[1]):
            paragraphs.pop(0)
        title = paragraphs.pop(0).strip()
    body = "\n\n".join(p for p in paragraphs if p.strip())
    url = meta.get("url") or meta.get("link") or ""
    return {"title": meta.get("title") or title, "text": body,
            "url": url if url.lower().startswith(("http://", "https://")) else "",
            "published_at": meta.get("date") or meta.get("published_at"),
            "author": meta.get("author") or ""}


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
