"""Cleaning: bytes of any charset in, plain article text out, without the cruft pages wrap around it."""

import codecs
import re
import unicodedata

import charset_normalizer
import lxml.html
from lxml import etree

_BOMS = [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# Single-byte Western code pages the sniffer confuses with one another; cp1252 is what such text
# almost always is (it is also what browsers read "latin-1" as).
_WESTERN = re.compile(r"^(cp125[02478]|iso8859-(1|2|3|4|9|10|13|14|15|16)|mac-(roman|latin2|iceland|turkish)"
                      r"|cp(437|775|850|852|858))$")
# Multi-byte CJK encodings: charset-normalizer scores their coherence near 0 (its language model is
# for alphabets), but their byte structure is strict enough that a clean decode is itself the evidence.
_MULTIBYTE = re.compile(r"^(euc[_-]|shift[_-]jis|cp9(32|36|49|50)|gb(2312|k|18030)|big5|iso2022|johab|hz)")


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


# Single-byte code pages of one script. charset-normalizer stops at the first sibling that decodes
# plausibly (windows-1251 Russian comes out as KOI8-R mojibake), so siblings are compared head to head.
_SIBLINGS = [
    ["cp1251", "koi8_r", "koi8_u", "iso8859_5", "cp866", "mac_cyrillic"],
    ["cp1255", "iso8859_8", "cp862"],
    ["cp1256", "iso8859_6", "cp864"],
    ["cp1253", "iso8859_7"],
    ["tis_620", "cp874", "iso8859_11"],
]


def _sniff(data: bytes) -> "charset_normalizer.CharsetMatch | None":
    best = charset_normalizer.from_bytes(data).best()
    family = next((f for f in _SIBLINGS if best is not None and best.encoding in f), None)
    return charset_normalizer.from_bytes(data, cp_isolation=family).best() if family else best


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Text of `data`, never failing: BOM, then valid UTF-8, then the declared charset (HTTP header or
    caller), then <meta>/XML charset, then a sniffed one; undecodable bytes become U+FFFD.

    Valid UTF-8 beats a declared charset because servers labelling UTF-8 pages as latin-1 is the
    common lie, while non-UTF-8 text that happens to be valid UTF-8 is vanishingly rare."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    head = data[:4096]
    meta = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    for candidate in (_codec(declared), _codec(meta.group(1).decode("ascii")) if meta else None):
        if candidate and candidate not in {"utf-8", "utf-16", "utf-32"}:
            try:
                return data.decode(candidate)
            except UnicodeDecodeError:
                continue
    best = _sniff(data[:200_000])
    # Trust the sniffer only when it recognised a language; on short snippets it guesses at random.
    guess = _codec(best.encoding) if best is not None else None
    if guess and best.coherence < 0.2 and not _MULTIBYTE.match(guess):
        guess = None
    if guess and not _WESTERN.match(guess):
        return data.decode(guess, errors="replace")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace")


_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
})
# Zero-width and control characters that survive copy-paste and break word matching; \t and \n stay.
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise_text(text: str) -> str:
    """NFC, straight quotes, collapsed whitespace, paragraph breaks kept as one blank line."""
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n"))
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


# Paragraphs that are page furniture, not article: dropped wherever they stand (when short).
_CRUFT = re.compile(
    r"^(back to top( button)?|content protection by\b.*|share (this|on)\b.*|share|tweet|print|email"
    r"|advertisement|sponsored( content)?|skip to (main )?content|(click|tap) here to\b.*"
    r"|(sign up|subscribe)( now)? (for|to) (our|the)\b.*newsletter.*|follow us on\b.*"
    r"|all rights reserved\.?|(copyright|©)\s.*|read more|continue reading|loading( comments)?\.*"
    r"|(leave|post) a comment|\d+ comments?|image( source)?:.*|photo:.*|related( posts| articles| stories)?"
    r"|you (may|might) also like|more (from|on) this\b.*|recommended( for you)?"
    r"|unsubscribe|manage (your )?(preferences|subscription)|view (this email )?in (your )?browser"
    r"|.*\b(we|this (web)?site) uses? cookies\b.*|.*\baccept (all )?cookies\b.*|cookie (settings|policy))$",
    re.IGNORECASE,
)
# A byline on its own line ("By Jane Doe", "Written by Reuters Staff"): capitalised names only, so that
# a short sentence beginning "By the time ..." stays.
_BYLINE = re.compile(r"^(By|BY|Written by|Posted by)\s+[A-Z][\w.'-]*( (and |[A-Z])[\w.'-]*){0,4}$")
# Headings after which only link lists follow: everything from them on is dropped.
_TAIL = re.compile(r"^(related( posts| articles| stories)?|you (may|might) also like|more stories|read next"
                   r"|recommended( for you)?|trending( now)?)\s*:?$", re.IGNORECASE)
_CRUFT_MAX_CHARS = 160


def strip_cruft(text: str, author: str = "") -> str:
    """Drop share/footer/cookie paragraphs and bylines repeated as text; `text` is normalised."""
    paragraphs = text.split("\n\n")
    byline = {author.strip().lower(), f"by {author.strip().lower()}"} if author.strip() else set()
    kept: list[str] = []
    offset = 0
    for paragraph in paragraphs:
        offset += len(paragraph) + 2
        stripped = paragraph.strip(" |-–—·•")
        if len(stripped) <= _CRUFT_MAX_CHARS:
            # A tail heading only ends the article in its second half: early on it is probably a real sentence.
            if _TAIL.match(stripped) and offset >= len(text) / 2:
                break
            if _CRUFT.match(stripped) or _BYLINE.match(stripped) or stripped.lower() in byline:
                continue
        kept.append(paragraph)
    return "\n\n".join(kept)


def clean_text(text: str, author: str = "") -> str:
    return strip_cruft(normalise_text(text), author)


_DROP_TAGS = ["script", "style", "noscript", "iframe", "object", "embed", "svg", "canvas", "form", "button",
              "nav", "header", "footer", "aside", "template", "select", "input", "textarea"]
_BLOCK_TAGS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "section",
               "article", "table", "ul", "ol", "dd", "dt", "figcaption", "hr"}


def html_to_text(html: str) -> str:
    """Readable text of an HTML fragment or page when trafilatura finds no article in it (feed
    summaries, newsletters): scripts, styles, embeds and navigation gone, blocks as paragraphs."""
    if not html.strip():
        return ""
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return ""
    for element in [*root.iter(*_DROP_TAGS), *root.iter(etree.Comment)]:
        if element.getparent() is not None:
            element.drop_tree()
        else:
            element.clear()
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n\n" + (element.tail or "")
        if element.tag != "br":
            element.text = "\n\n" + (element.text or "")
    return normalise_text(root.text_content())
