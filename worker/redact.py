"""Credentials out of URLs before they are shown (/health, admin, CLI) or logged.

A password can sit in a URL's userinfo (`redis://:pw@host`, `amqp://user:pw@host`) or in its query
(`redis://host/0?password=pw`, `?api_key=`). kombu's sanitizer (kombu.utils.url.sanitize_url) covers only
the first and rebuilds the URL without its query, so both are masked here; `redact_text` does it to every
URL inside a free-text message (exception texts).
"""

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"
# Query parameters whose value is a credential.
SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|cred|sig", re.IGNORECASE)
URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """`url` with any userinfo and any secret-looking query value replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparseable: show nothing rather than a secret
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret: unchanged, byte for byte
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + \
        (f"#{parts.fragment}" if parts.fragment else "")


def redact_text(text: str) -> str:
    """Every URL inside `text` redacted (exception messages quote the URL they failed on)."""
    return URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)


class RedactFilter(logging.Filter):
    """On the log handlers (settings.LOGGING): a URL in any log line loses its credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
