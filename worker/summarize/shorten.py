"""Shorten a headline or subject line the way an editor would: at a phrase boundary, with an ellipsis.

A hard cut at N characters leaves "... honored for 'courageous achievement' at" in a subject line:
a dangling preposition, or worse, half a quotation. Here the cut falls only where a clause or a
phrase ends (before punctuation, a preposition or a conjunction), never inside quotation marks,
and the kept part never ends on a function word.
"""

import re

ELLIPSIS = "…"

# Words a headline must not end on: articles, prepositions, conjunctions, auxiliaries, possessives.
FUNCTION_WORDS = frozenset(
    """a an the and or but nor so yet for of to in on at by with from into onto over under about after before
    as than that which who whom whose while when where if because though although since until via per amid
    against between during without within upon among across toward towards through its his her their our my
    your is are was were be been being has have had do does did will would can could shall should may might
    must not no this these those""".split()
)
# Words that open a new phrase: cutting just before them leaves a whole phrase behind.
_PHRASE_OPENERS = FUNCTION_WORDS - frozenset("a an the its his her their our my your this these those".split())
_WORD = re.compile(r"\S+")
_OPENING_QUOTES = "\"“‘«"
_CLOSING_QUOTES = "\"”’»"


def _quote_depth(text: str) -> int:
    """How many quotations are open at the end of `text` (apostrophes inside words do not count)."""
    depth = 0
    straight_double_open = False
    single_open = False
    for k, char in enumerate(text):
        before = text[k - 1] if k else " "
        after = text[k + 1] if k + 1 < len(text) else " "
        if char in "“«":
            depth += 1
        elif char in "”»":
            depth = max(0, depth - 1)
        elif char == '"':
            straight_double_open = not straight_double_open
            depth += 1 if straight_double_open else -1
        elif char in "'‘’":
            # An apostrophe sits between letters ("don't") or after a plural ("players'"); a quote
            # mark opens after a space and closes before one.
            if before.isspace() or before in "([" and after.isalnum():
                if after.isalnum() and not single_open:
                    single_open = True
                    depth += 1
            elif single_open and not after.isalnum():
                single_open = False
                depth -= 1
    return depth


def _clean_end(words: list[str]) -> list[str]:
    """Drop trailing function words and punctuation so the kept part ends on a content word."""
    while words:
        last = words[-1].rstrip(",;:–—-")
        if not last:
            words = words[:-1]
            continue
        if last.lower().strip(_OPENING_QUOTES + _CLOSING_QUOTES + "'") in FUNCTION_WORDS:
            words = words[:-1]
            continue
        words[-1] = last
        return words
    return words


def shorten(text: str, limit: int = 90, ellipsis: str = ELLIPSIS) -> str:
    """`text` if it fits in `limit` characters, else its longest phrase-bounded prefix plus the ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    words = _WORD.findall(text)
    budget = limit - len(ellipsis)
    best: list[str] = []
    fallback: list[str] = []
    for end in range(1, len(words)):
        kept = words[:end]
        if len(" ".join(kept)) > budget:
            break
        following = words[end].lower().strip(_OPENING_QUOTES + "(")
        ends_phrase = kept[-1][-1] in ",;:)" or words[end] in ("–", "—", "-") or following in _PHRASE_OPENERS
        candidate = _clean_end(list(kept))
        if not candidate or _quote_depth(" ".join(candidate)):
            continue
        if ends_phrase:
            best = candidate
        fallback = candidate
    # A phrase boundary that keeps at least half the room wins; otherwise any clean word boundary.
    chosen = best if best and len(" ".join(best)) >= budget // 2 else fallback or best
    if not chosen:
        # One giant word: cut it; nothing better exists.
        return text[:budget].rstrip() + ellipsis
    return " ".join(chosen).rstrip(",;:") + ellipsis


def ends_badly(headline: str) -> bool:
    """Whether a headline ends on a function word or inside an open quotation (for the eval checks)."""
    words = headline.rstrip(ELLIPSIS + ".").split()  # "..." too
    last = words[-1].lower().strip(_OPENING_QUOTES + _CLOSING_QUOTES + "',;:") if words else ""
    return last in FUNCTION_WORDS or _quote_depth(headline) > 0
