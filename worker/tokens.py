"""The one signed-token helper: every signed value the app puts in a link or a mail, by purpose.

A purpose is the signing salt, so a token minted for one purpose never verifies for another (an
unsubscribe token is no click token). The formats are exactly Django's signing formats with these
salts, as minted before this module existed: links already in mailboxes keep working, and changing a
purpose's value or the compression would break every one of them.

- timed tokens (`dumps`/`loads`, TimestampSigner): confirm, unsubscribe, preferences links;
  the caller gives the max age when it checks one;
- untimed signatures (`sign_object`/`unsign_object`, `sign`/`unsign`): click links and the reader
  stamp on them, which must stay valid for as long as a digest is kept.
"""

from enum import StrEnum
from functools import cache
from typing import Any

from django.conf import settings
from django.core import signing

# What a forged, damaged or other-purpose token raises; ExpiredToken is a BadToken too.
BadToken = signing.BadSignature
ExpiredToken = signing.SignatureExpired


class Purpose(StrEnum):
    """The salts. Never change a value: every token of that purpose already mailed would break."""

    CONFIRM = "newsdigest.confirm"
    UNSUBSCRIBE = "newsdigest.unsubscribe"
    PREFERENCES = "newsdigest.preferences"
    CLICK = "newsdigest.click"
    CLICK_READER = "newsdigest.click-reader"


@cache
def _signers(purpose: Purpose, key: str, fallbacks: tuple[str, ...]) -> tuple[signing.Signer, signing.TimestampSigner]:
    # Made once per purpose and key (what `signing.dumps` builds on every call: the send loop mints two tokens
    # per message, the click redirect checks one per request). A signer copies the key when made, so the key
    # is part of the cache's key: a changed SECRET_KEY (or its fallbacks) gets new signers.
    return (signing.Signer(key=key, fallback_keys=fallbacks, salt=purpose.value),
            signing.TimestampSigner(key=key, fallback_keys=fallbacks, salt=purpose.value))


def _signer(purpose: Purpose, *, timed: bool = False) -> signing.Signer:
    untimed, timed_signer = _signers(purpose, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))
    return timed_signer if timed else untimed


def dumps(purpose: Purpose, value: dict[str, Any]) -> str:
    """A timed, compressed token carrying `value` (small JSON): `signing.dumps(value, salt=purpose, compress=True)`."""
    return _signer(purpose, timed=True).sign_object(value, compress=True)


def loads(purpose: Purpose, token: str, max_age: float | None = None) -> Any:
    """The value of a genuine token of this purpose; BadToken, or ExpiredToken when older than max_age."""
    return signing.loads(token, salt=purpose.value, max_age=max_age)


def sign_object(purpose: Purpose, value: Any) -> str:
    """An untimed, compressed signed JSON value."""
    return _signer(purpose).sign_object(value, compress=True)


def unsign_object(purpose: Purpose, token: str) -> Any:
    """BadToken when forged; a damaged payload under a good signature may raise ValueError (JSON)."""
    return _signer(purpose).unsign_object(token)


def sign(purpose: Purpose, value: str) -> str:
    """An untimed signature appended to a short string ("value:signature")."""
    return _signer(purpose).sign(value)


def unsign(purpose: Purpose, token: str) -> str:
    return _signer(purpose).unsign(token)
