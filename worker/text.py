"""Text utilities shared by ingest, the offline engine, grounding and evaluation.

Each of these answers a question two stages must answer the same way: where a sentence ends,
whether it is prose or page furniture, the folded form two spellings are compared in, and
whether two spellings are one name. Nothing here knows about engines, models or the database.
"""

import re
import unicodedata
from functools import lru_cache

from rapidfuzz import fuzz

# --------------------------------------------------------------------------- sentences

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st gen sen rep gov col lt capt prof inc ltd corp co no vs jr sr mt ft sgt maj adm cmdr "
    "jan feb mar apr jun jul aug sep sept oct nov dec est approx dept".split()
)
# Latin Extended-A (Ā-Ž) too: "... Hall. Łukasz, who ..." starts a sentence; its lowercase letters,
# interleaved in that block, almost never start one after a full stop.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9À-ÝĀ-Ž])")
_TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")
_BOILERPLATE = re.compile(
    r"back to top|content protection|all rights reserved|©|\bsubscribe\b|sign up for|newsletter|"
    r"cookie|advertisement|share this|follow us|read more|related articles?|click here|privacy policy|"
    r"terms of (use|service)|skip to (main )?content|print this|email this"
)  # matched against lowercased text: five times faster than re.IGNORECASE


def _ends_with_abbreviation(chunk: str) -> bool:
    last = chunk.rsplit(None, 1)[-1].rstrip(".").lstrip("\"'“‘(")
    # A lone capital ("John F.") or dotted initials ("U.S.") end a name, not a sentence.
    return last.lower() in _ABBREVIATIONS or bool(re.fullmatch(r"(?:[A-Z]\.?)+", last) and len(last) <= 4
                                                  and "." in chunk[-3:])


def _segments(text: str) -> list[str]:
    """Paragraphs, with short unpunctuated lines (section labels, headlines, footers) kept apart.

    Flattening everything first would glue "World News" onto the first sentence and the
    footer onto the last, and those would then be quoted as evidence.
    """
    segments: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        buffer: list[str] = []
        for line in paragraph.splitlines():
            line = " ".join(line.split())
            if not line:
                continue
            if not _TERMINAL.search(line[-4:]) and len(line.split()) <= 10:
                if buffer:
                    segments.append(" ".join(buffer))
                    buffer = []
                segments.append(line)
            else:
                buffer.append(line)
        if buffer:
            segments.append(" ".join(buffer))
    return segments


def split_sentences(text: str) -> list[str]:
    """Sentences in article order; each is a substring of the whitespace-normalised text."""
    sentences: list[str] = []
    for segment in _segments(text):
        start = 0
        for match in _BOUNDARY.finditer(segment):
            # The match starts after the punctuation, so closing quotes stay with their sentence.
            chunk = segment[start:match.end()].rstrip()
            if _ends_with_abbreviation(chunk):
                continue
            sentences.append(chunk)
            start = match.end()
        if tail := segment[start:].strip():
            sentences.append(tail)
    return sentences


def is_content(sentence: str) -> bool:
    """Whether a sentence is article prose rather than a label, a footer or a sharing prompt."""
    words = len(sentence.split())
    # Site furniture is short; skipping the pattern on long sentences keeps the engine fast.
    if words < 3 or not _TERMINAL.search(sentence[-4:]):
        return False
    return words > 25 or not _BOILERPLATE.search(sentence.lower())


def quotes_balanced(text: str) -> bool:
    """Straight double quotes pair up and every curly opening quote is closed."""
    return text.count('"') % 2 == 0 and text.count("“") == text.count("”")


# --------------------------------------------------------------------------- names

@lru_cache(maxsize=65536)
def fold(name: str) -> str:
    """Lowercase, accents off, punctuation to spaces: the form two spellings are compared in."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", plain).split())


@lru_cache(maxsize=65536)
def _skeleton(token: str) -> str:
    """A transliteration-tolerant key: Massoud, Masoud, Massaoud and Massaud all become "msd"."""
    token = fold(token)
    for a, b in (("ph", "f"), ("kh", "k"), ("q", "k"), ("ck", "k"), ("y", "i"), ("w", "v")):
        token = token.replace(a, b)
    head, rest = token[:1], re.sub(r"[aeiou\s]", "", token[1:])
    return re.sub(r"(.)\1+", r"\1", head + rest)


@lru_cache(maxsize=65536)
def same_token(a: str, b: str) -> bool:
    """One word in two spellings (Massoud/Masoud, Mohammed/Muhammad): the same transliteration
    skeleton and close as strings. The offline engine merges actors and grounding resolves names
    with this one test, so a name the engine merged is one grounding accepts."""
    fa, fb = fold(a), fold(b)
    if fa == fb:
        return True
    return _skeleton(fa) == _skeleton(fb) and fuzz.ratio(fa, fb) >= 70


def same_name(a: list[str], b: list[str]) -> bool:
    """Token for token: "Ahmad Masoud" is "Ahmad Massoud", but "Ahmad Massoud" is not "Ahmad Shah Massoud"."""
    return len(a) == len(b) and all(same_token(x, y) for x, y in zip(a, b, strict=True))
