"""DKIM signing of outgoing digests, on the exact bytes the backend will send.

Both the SMTP backend and the outbox backend call `EmailMessage.message()` and serialise what it
returns, so signing inside `message()` covers every backend that sends MIME (API-based anymail
backends rebuild the message at the provider, which signs it there). The same `message()` also prepares
the message for the cheaper serialisation of mime.py.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import dkim
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives

from .mime import as_bytes, quick_serialising

# RFC 8058 asks for List-Unsubscribe and List-Unsubscribe-Post to be signed, so a forwarder
# cannot swap the unsubscribe target.
SIGNED_HEADERS = (
    "From", "Reply-To", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
    "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)


@dataclass(frozen=True)
class SigningKey:
    selector: str
    domain: str
    private_key: bytes


@lru_cache(maxsize=8)
def _read_key(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"NEWSDIGEST_DKIM_KEY_FILE {path!r} cannot be read: {exc}") from exc


def signing_key() -> SigningKey | None:
    """The configured key, or None when DKIM is off; half a configuration is an error, not silence."""
    selector, domain = settings.NEWSDIGEST_DKIM_SELECTOR, settings.NEWSDIGEST_DKIM_DOMAIN
    inline, path = settings.NEWSDIGEST_DKIM_PRIVATE_KEY, settings.NEWSDIGEST_DKIM_KEY_FILE
    if not (selector or domain or inline or path):
        return None
    if not (selector and domain and (inline or path)):
        raise ImproperlyConfigured(
            "DKIM needs NEWSDIGEST_DKIM_SELECTOR, NEWSDIGEST_DKIM_DOMAIN and NEWSDIGEST_DKIM_KEY_FILE "
            "(or NEWSDIGEST_DKIM_PRIVATE_KEY); set all of them or none")
    # A PEM in an environment variable often arrives with literal "\n".
    key = inline.replace("\\n", "\n").encode() if inline else _read_key(path)
    return SigningKey(selector=selector, domain=domain, private_key=key)


def signature_header(raw: bytes, key: SigningKey) -> str:
    """The DKIM-Signature value for `raw` (CRLF line ends), unfolded so it can be set as one header."""
    present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
               if line and line[:1] not in b" \t"}
    headers = [name.encode() for name in SIGNED_HEADERS if name.lower().encode() in present]
    try:
        signed = dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private_key,
                           include_headers=headers, canonicalize=(b"relaxed", b"relaxed"))
    except dkim.DKIMException as exc:
        raise ImproperlyConfigured(f"DKIM signing failed (check the private key): {exc}") from exc
    value = signed.decode("ascii").split(":", 1)[1]
    return " ".join(value.split())


class SignedEmailMessage(EmailMultiAlternatives):
    """Adds DKIM-Signature to the MIME message the backend is about to serialise, when a key is set."""

    def message(self, *args, **kwargs):
        mime = super().message(*args, **kwargs)
        quick_serialising(mime)
        if (key := signing_key()) is not None:
            # Serialising fixes the multipart boundary, so the backend's own pass yields the same bytes.
            mime["DKIM-Signature"] = signature_header(as_bytes(mime), key)
        return mime
