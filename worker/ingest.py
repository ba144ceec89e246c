"""Ingest stage: files, URLs and JSON become clean Article rows, each text stored once."""

import hashlib
import json
import logging
import re
import unicodedata
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import trafilatura
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from .models import Article, Source

log = logging.getLogger("newsdigest.ingest")


class IngestError(ValueError):
    """The input cannot become an article; the message says why."""


@dataclass
class IngestResult:
    article: Article
    created: bool


def normalise_text(text: str) -> str:
    """NFC, straight whitespace, paragraph breaks kept as one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def content_hash(text: str) -> str:
    folded = " ".join(text.lower().split())
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    for encoding in filter(None, [declared, "utf-8"]):
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def extract_html(html: str, url: str = "") -> dict:
    """Main text and metadata of an article page, without navigation and footer cruft."""
    doc = trafilatura.bare_extraction(html, url=url or None, with_metadata=True, favor_precision=True)
    if doc is None:
        raise IngestError("no article text found in the HTML")
    meta = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    return {
        "title": meta.get("title") or "",
        "author": meta.get("author") or "",
        "text": meta.get("text") or "",
        "url": meta.get("url") or url,
        "published_at": meta.get("date"),
        "language": meta.get("language") or "",
    }


def _parse_date(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def ingest_article(
    *, title: str, text: str, url: str = "", author: str = "", published_at=None,
    language: str = "", source: Source | None = None,
) -> IngestResult:
    """Store one article unless the same text is already there (re-ingesting is a no-op)."""
    text = normalise_text(text)
    title = " ".join(title.split())
    if not text:
        raise IngestError("article has no text")
    if not title:
        title = text.split("\n", 1)[0][:120]
    digest = content_hash(text)
    if existing := Article.objects.filter(content_hash=digest).first():
        return IngestResult(existing, False)
    try:
        with transaction.atomic():
            article = Article.objects.create(
                title=title[:500], text=text, url=url[:2000], canonical_url=url[:2000],
                author=author[:300], published_at=_parse_date(published_at),
                language=language[:16], content_hash=digest, source=source,
            )
    except IntegrityError:
        # Another worker stored the same text between our check and insert.
        return IngestResult(Article.objects.get(content_hash=digest), False)
    return IngestResult(article, True)


def ingest_record(record: dict, source: Source | None = None) -> IngestResult:
    if not isinstance(record, dict):
        raise IngestError("each JSON article must be an object")
    text, title = record.get("text") or record.get("content") or "", record.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise IngestError("title and text must be strings")
    if record.get("html") and not text:
        extracted = extract_html(record["html"], record.get("url", ""))
        text, title = extracted["text"], title or extracted["title"]
    return ingest_article(
        title=title, text=text, url=str(record.get("url") or ""), author=str(record.get("author") or ""),
        published_at=record.get("published_at"), language=str(record.get("language") or ""), source=source,
    )


def ingest_file(path: Path, source: Source | None = None) -> list[IngestResult]:
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            payload = json.loads(decode_bytes(data))
        except json.JSONDecodeError as exc:
            raise IngestError(f"{path.name}: invalid JSON ({exc})") from exc
        records = payload if isinstance(payload, list) else [payload]
        return [ingest_record(r, source) for r in records]
    text = decode_bytes(data)
    if suffix in {".html", ".htm"}:
        extracted = extract_html(text)
        return [ingest_article(source=source, **{k: v for k, v in extracted.items() if k != "url"},
                               url=extracted["url"])]
    # Plain text / markdown: the first non-empty line is the title.
    lines = [line for line in text.splitlines()]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise IngestError(f"{path.name}: file is empty")
    title = lines[first].strip().lstrip("#").strip()
    return [ingest_article(title=title, text="\n".join(lines[first + 1:]), source=source)]


def fetch_url(url: str) -> tuple[bytes, str | None]:
    if not url.lower().startswith(("http://", "https://")):
        raise IngestError(f"only http and https URLs are fetched: {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "Newsdigest/0.1"})
    with urllib.request.urlopen(request, timeout=settings.NEWSDIGEST_FETCH_TIMEOUT) as response:
        body = response.read(settings.NEWSDIGEST_FETCH_MAX_BYTES + 1)
        charset = response.headers.get_content_charset()
    if len(body) > settings.NEWSDIGEST_FETCH_MAX_BYTES:
        raise IngestError(f"{url}: page larger than {settings.NEWSDIGEST_FETCH_MAX_BYTES} bytes")
    return body, charset


def ingest_url(url: str, source: Source | None = None) -> IngestResult:
    body, charset = fetch_url(url)
    extracted = extract_html(decode_bytes(body, charset), url)
    return ingest_article(source=source, **{k: v for k, v in extracted.items() if k != "url"},
                          url=extracted["url"] or url)


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
            found.extend(sorted(Path().glob(target)))
    return found


SUPPORTED_SUFFIXES = {".txt", ".md", ".html", ".htm", ".json"}
