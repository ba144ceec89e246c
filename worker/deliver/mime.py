"""Serialising a message without three costs of the email package that buy nothing here (issue 18: they were
over half of building a message, bench/fanout/cpu.py), with the same bytes as Django's `as_bytes`
(tests/deliver/test_serialising.py):

- every header line went through `email.header.Header` folding, though nearly all are short ASCII lines
  that fold to themselves (`QuickFolding`);
- a multipart's boundary was chosen at serialisation by joining its parts' text and compiling a regex per
  message to check that a random number does not occur in it (`quick_serialising` sets a 128-bit random
  one instead, which cannot occur in a digest by chance and cannot be guessed by someone writing one);
- the body was written one line at a time, two writes and an encode per line (`QuickGenerator`).
"""

import re
import secrets
from email.generator import NLCRE, BytesGenerator
from email.message import Message
from email.policy import Compat32
from io import BytesIO

# Printable ASCII words separated by single spaces: a header value that Header folding returns unchanged
# when it fits on its line.
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")


class QuickFolding(Compat32):
    """Django's policy (compat32), except that a header line that needs no folding or encoding is written as
    it is; every other value takes compat32's own path."""

    def _fold(self, name: str, value, sanitize: bool) -> str:
        if (isinstance(value, str) and len(name) + 2 + len(value) <= (self.max_line_length or 998)
                and _PLAIN_VALUE.fullmatch(value)):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


QUICK_FOLDING = QuickFolding()


def quick_serialising(mime: Message) -> None:
    """Give every part the folding policy above and every multipart its boundary, before serialisation."""
    for part in mime.walk():
        part.policy = QUICK_FOLDING
        if part.is_multipart() and part.get_boundary() is None:
            part.set_boundary(f"===============nd{secrets.token_hex(16)}==")


class QuickGenerator(BytesGenerator):
    """BytesGenerator writing a body's lines, with their line ends made `linesep`, in one write: what its
    line-by-line loop writes, since splitting on NLCRE and joining with the separator is substituting it."""

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(NLCRE.sub(self._NL, lines))


def as_bytes(mime: Message, linesep: str = "\r\n") -> bytes:
    """Django's `as_bytes` (no "From " mangling) through QuickGenerator."""
    out = BytesIO()
    QuickGenerator(out, mangle_from_=False).flatten(mime, linesep=linesep)
    return out.getvalue()
