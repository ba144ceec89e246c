"""Grounding: keep only what the article itself supports, whichever engine wrote the summary.

A model answer that parses is not yet a faithful one. Every key actor must be named in the
article (allowing accent-folded and transliterated spellings), quote evidence the article
contains, and be an actor rather than a place, a cited publication or page boilerplate.
Variants of one person are merged under the fullest name the article uses; two people who
share a surname (a father and a son) are never merged. What fails is reported as a problem
(for the LLM's one repair round) and, if still there, dropped and flagged for the editor.
"""

import itertools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import pycountry
from django.conf import settings
from rapidfuzz import fuzz

from ..text import fold, same_name, same_token, split_sentences
from .schemas import ActorKind, ArticleSummary, KeyActor

MAX_ACTORS = 7
MAX_TOPICS = 3
MAX_SUMMARY_WORDS = 80
MIN_EVIDENCE_CHARS = 12

_TYPOGRAPHY = str.maketrans({
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"',
    "»": '"', "–": "-", "—": "-", "‐": "-", "‑": "-", "\u00a0": " ",
})
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ELLIPSIS = re.compile(r"\s*(?:\[\s*(?:\.\s*){3}\]|\(\s*(?:\.\s*){3}\)|(?:\.\s*){3}|…)\s*")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")  # 1,800 and 1800 are one number
_NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")
# Lower-case particles inside names: "Osama bin Laden", "Ursula von der Leyen".
_CONNECTORS = frozenset("bin ibn al el de del della da das dos van von der den la le du ter ben abu".split())
_TITLES = frozenset(
    """mr mrs ms miss dr prof sir dame lord lady president vice prime minister secretary general gen col
    lt capt sgt maj adm chancellor king queen prince princess sheikh senator sen rep governor gov mayor
    judge justice chief director commander ceo chairman chairwoman chair pope cardinal bishop rev father
    saint st""".split()
)
# Capitalised only because they open a sentence: "Yesterday Massoud said" names Massoud alone.
_SENTENCE_OPENERS = frozenset(
    """a an the and but or so yet if when while after before since as at by for from in into of on to with
    yesterday today tomorrow tonight earlier later meanwhile also however still then now last next this that
    these those there here his her their its our my your he she they we it i both all some many most several
    officials police critics supporters residents analysts sources""".split()
)
_PUBLICATION = re.compile(
    r"\b(times|post|news|journal|herald|tribune|gazette|telegraph|chronicle|magazine|daily|reuters|"
    r"associated press|agence france-presse|afp|bbc|cnn|bloomberg|newswire|wire service)\b", re.IGNORECASE)
_CITATION = re.compile(
    r"\b(told|according to|reported|reports|reporting|wrote|writes|cited|citing|quoted|said in an interview|"
    r"interview with|via|contributed|first published|published by|copyright)\b", re.IGNORECASE)
_BOILERPLATE = re.compile(
    r"back to top|all rights reserved|©|\bsubscribe\b|newsletter|advertisement|cookie|privacy policy|"
    r"terms of (use|service)|skip to|share this|follow us|read more|click here|sign up|content protection",
    re.IGNORECASE)


@dataclass
class Grounded:
    summary: ArticleSummary  # what survived, names resolved, flags added
    problems: list[str] = field(default_factory=list)  # what a repair round could still fix


# --------------------------------------------------------------------------- text matching

def _normalised_with_map(text: str) -> tuple[str, list[int]]:
    """`normalise` character by character (slower), keeping each character's index in the
    original so a fuzzy match can be quoted back as the article has it."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text.translate(_TYPOGRAPHY)):
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                index.append(i)
            continue
        low = ch.lower()
        out.append(low if len(low) == 1 else ch)
        index.append(i)
    return "".join(out).strip(), index


def normalise(text: str) -> str:
    """The form quotes are compared in: NFKC, plain quotes and dashes, one space, lower case."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY).lower().split())


class Article:
    """The article, pre-digested once for every check."""

    def __init__(self, text: str):
        self.text = unicodedata.normalize("NFKC", text)
        self.norm = normalise(self.text)
        self.tokens = [(m.group(), fold(m.group()), m.start(), m.end()) for m in _WORD.finditer(self.text)]
        self.lowercase_words = {t for t, _, _, _ in self.tokens if t.islower()}
        self.numbers = {_plain_number(n) for n in _NUMBER.findall(self.text)}
        self.sentences = split_sentences(self.text)
        # Each sentence (and each pair, for a quote that runs over a boundary) as its bare words.
        spans = [*self.sentences, *map(" ".join, itertools.pairwise(self.sentences))]
        self.span_words = [(span, f" {_bare_words(span)} ") for span in spans]
        self.whole_sentences = {_bare_words(s): s for s in self.sentences}

    def quote(self, evidence: str) -> str | None:
        """The article's own wording of `evidence`, or None if the article does not contain it."""
        needle = normalise(evidence)
        if len(needle) < MIN_EVIDENCE_CHARS or len(needle.split()) < 3:
            return None
        if needle in self.norm:
            # A whole sentence comes back as the article writes it (its quotes, its final stop).
            return self.whole_sentences.get(_bare_words(evidence), " ".join(evidence.split()))
        if (snapped := self._snap(evidence)) is not None:
            return snapped
        threshold = settings.NEWSDIGEST_GROUNDING_THRESHOLD
        # A near-verbatim sentence (or two) is replaced by the article's own wording, unless the
        # few words that differ change what it says (a number, a negation): that quote is invented.
        best = max((span for span, _ in self.span_words), key=lambda s: fuzz.ratio(needle, normalise(s)),
                   default=None)
        if best is not None and fuzz.ratio(needle, normalise(best)) >= threshold:
            return None if _changes_meaning(evidence, best) else best
        # A near-verbatim clause of a sentence is quoted as the article has it, in whole words.
        mapped, index = _normalised_with_map(self.text)
        match = fuzz.partial_ratio_alignment(needle, mapped, score_cutoff=threshold)
        if match is None or match.dest_end - match.dest_start < 0.9 * len(needle):
            return None
        start, end = index[match.dest_start], index[match.dest_end - 1] + 1
        while start > 0 and not self.text[start - 1].isspace():
            start -= 1
        while end < len(self.text) and not self.text[end].isspace():
            end += 1
        clause = " ".join(self.text[start:end].split())
        return None if _changes_meaning(evidence, clause) else clause

    def _snap(self, evidence: str) -> str | None:
        """The article sentence that `evidence` quotes word for word, give or take punctuation (a
        dropped comma or final stop, straight for curly quotes) and with cuts marked by an ellipsis:
        every piece's words in order inside one sentence (or two adjacent ones). Whole words only,
        so a changed or invented word never snaps."""
        pieces = [f" {words} " for piece in _ELLIPSIS.split(evidence) if (words := _bare_words(piece))]
        if sum(len(p.split()) for p in pieces) < 3:
            return None
        for span, words in self.span_words:
            at = 0
            for piece in pieces:
                found = words.find(piece, at)
                if found < 0:
                    break
                at = found + len(piece) - 1
            else:
                return span
        return None

    def find_name(self, name: str) -> str | None:
        """The article's spelling of `name` (exact after folding, else a known variant spelling)."""
        wanted = [t for t in fold(name).split() if t]
        if wanted and wanted[0] == "the" and len(wanted) > 1:
            wanted = wanted[1:]
        if not wanted:
            return None
        n = len(wanted)
        for same in (_exact, _variant):  # the exact spelling wins over a variant
            for i in range(len(self.tokens) - n + 1):
                window = self.tokens[i:i + n]
                if all(same(w, t) for w, t in zip(wanted, window, strict=True)):
                    return self.text[window[0][2]:window[-1][3]]
        return None

    def full_names_ending_with(self, token: str) -> set[str]:
        """Every capitalised name run in the article whose last word is `token` (or a variant of it)."""
        found: set[str] = set()
        for i, (word, folded, _, _) in enumerate(self.tokens):
            if not word[:1].isupper() or not same_token(token, folded):
                continue
            start = i
            while start > 0:
                prev, prev_folded, _, prev_end = self.tokens[start - 1]
                joined = self.text[prev_end:self.tokens[start][2]].strip(" -\u2010\t") == ""
                if joined and (prev_folded in _CONNECTORS or (prev[:1].isupper() and self._name_word(prev))):
                    start -= 1
                else:
                    break
            while start < i and self.tokens[start][1] in _CONNECTORS:
                start += 1
            if start < i:
                found.add(" ".join(self.text[self.tokens[start][2]:self.tokens[i][3]].split()))
        return found

    def _name_word(self, word: str) -> bool:
        # A capitalised word the article also uses in lower case ("Yesterday", "The") starts a
        # sentence, it is not part of a name; nor is a title ("President").
        folded = fold(word)
        return (word.lower() not in self.lowercase_words and folded not in _TITLES
                and folded not in _SENTENCE_OPENERS)


def _exact(wanted: str, token: tuple[str, str, int, int]) -> bool:
    return wanted == token[1]


def _variant(wanted: str, token: tuple[str, str, int, int]) -> bool:
    """Another spelling of a name word (same_token), found only where the article writes a name: a
    capitalised word ending like it (Bill is not "ball" or "bail", Germany is not German or Grumman)."""
    word, folded = token[0], token[1]
    return (word[:1].isupper() and wanted[-1:].replace("y", "i") == folded[-1:].replace("y", "i")
            and same_token(wanted, folded))


def _bare_words(text: str) -> str:
    """Lower-case words and numbers only, one space apart: what a quote says, not how it is punctuated."""
    return " ".join(_WORD.findall(_THOUSANDS.sub("", normalise(text))))


_NEGATIONS = frozenset("not no never nor none nobody nothing neither without t".split())  # t: don't, didn't


def _changes_meaning(quote: str, source: str) -> bool:
    """Whether the words a near-verbatim quote adds or leaves out are numbers or negations."""
    quoted, said = Counter(_bare_words(quote).split()), Counter(_bare_words(source).split())
    return any(w in _NEGATIONS or any(c.isdigit() for c in w) for w in (quoted - said) + (said - quoted))


def _plain_number(number: str) -> str:
    return number.replace(",", "").rstrip(".")


@cache
def _places() -> frozenset[str]:
    names = set()
    for record in (*pycountry.countries, *pycountry.subdivisions):
        for attr in ("name", "common_name", "official_name"):
            if value := getattr(record, attr, None):
                names.add(fold(value))
    return frozenset(names)


# --------------------------------------------------------------------------- actors

def _not_an_actor(actor: KeyActor, article: Article) -> str | None:
    """Why this 'actor' is really a place, a cited publication or page furniture (conservatively)."""
    if _BOILERPLATE.search(actor.name):
        return "site boilerplate, not an actor"
    if actor.kind not in (ActorKind.OTHER, ActorKind.ORGANISATION):
        return None  # countries and people act; only vague kinds can hide a place or a masthead
    if fold(actor.name).removeprefix("the ") in _places():
        return "a place, not an actor"
    if _PUBLICATION.search(actor.name):
        mentions = [s for s in article.sentences if fold(actor.name).removeprefix("the ") in fold(s)]
        if mentions and all(_CITATION.search(s) for s in mentions):
            return "a cited publication, not an actor"
    return None


@dataclass
class _Candidate:
    actor: KeyActor
    tokens: list[str]  # folded name words, connectors included


def _resolve_actors(actors: list[KeyActor], article: Article) -> tuple[list[KeyActor], list[str], list[str]]:
    """(kept actors, flags for the dropped, problems worth a repair round)."""
    flags: list[str] = []
    problems: list[str] = []
    kept: list[_Candidate] = []

    def drop(actor: KeyActor, reason: str, repairable: bool) -> None:
        flags.append(f"dropped actor '{actor.name}': {reason}")
        if repairable:
            problems.append(f"key actor '{actor.name}': {reason}")

    for actor in actors:
        spelled = article.find_name(actor.name)
        if spelled is None:
            drop(actor, "name not in article", True)
            continue
        if reason := _not_an_actor(actor, article):
            drop(actor, reason, False)
            continue
        quote = article.quote(actor.evidence)
        if quote is None:
            drop(actor, "evidence not in article", True)
            continue
        name = spelled
        tokens = fold(name).split()
        if actor.kind == ActorKind.PERSON and len(tokens) == 1:
            full = _distinct_people(article.full_names_ending_with(tokens[0]))
            if len(full) > 1:
                options = " or ".join(f"'{f}'" for f in sorted(full))
                drop(actor, f"ambiguous surname, could be {options}", True)
                continue
            if full:
                name = full[0]
                tokens = fold(name).split()
        kept.append(_Candidate(actor.model_copy(update={"name": name, "evidence": quote}), tokens))
    return _merge(kept), flags, problems


def _distinct_people(names: set[str]) -> list[str]:
    """One representative per person: spelling variants collapse, different full names do not."""
    people: list[str] = []
    for name in sorted(names, key=lambda n: (-len(n.split()), n)):
        if not any(same_name(fold(name).split(), fold(other).split()) for other in people):
            people.append(name)
    return people


def _merge(candidates: list[_Candidate]) -> list[KeyActor]:
    """Fold repeated or variant entries for one actor into the first, under the fullest name."""
    merged: list[_Candidate] = []
    for candidate in candidates:
        target = next((m for m in merged if same_name(m.tokens, candidate.tokens)), None)
        if target is None and len(candidate.tokens) == 1 and candidate.actor.kind == ActorKind.PERSON:
            people = [m for m in merged if m.actor.kind == ActorKind.PERSON and len(m.tokens) > 1
                      and same_token(candidate.tokens[0], m.tokens[-1])]
            target = people[0] if len(people) == 1 else None
        if target is None:
            merged.append(candidate)
        elif len(candidate.tokens) > len(target.tokens):
            target.actor = target.actor.model_copy(update={"name": candidate.actor.name})
            target.tokens = candidate.tokens
    return [m.actor for m in merged]


# --------------------------------------------------------------------------- the summary text

def _unsupported_numbers(summary: ArticleSummary, article: Article) -> list[str]:
    text = " ".join((summary.headline, summary.summary, summary.why_it_matters))
    return sorted({n for n in _NUMBER.findall(text) if _plain_number(n) not in article.numbers})


def _shorten(summary: str, max_words: int = MAX_SUMMARY_WORDS) -> str:
    """Whole sentences up to the word limit; a single overlong sentence is cut at the limit."""
    kept: list[str] = []
    for sentence in split_sentences(summary):
        if len(" ".join([*kept, sentence]).split()) > max_words:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    return " ".join(summary.split()[:max_words]) + "…"


def ground(summary: ArticleSummary, text: str, max_words: int = MAX_SUMMARY_WORDS) -> Grounded:
    """Check `summary` against the article `text`; return what survives plus what a repair could fix.
    `max_words` is the newsletter's summary length."""
    article = Article(text)
    actors, flags, problems = _resolve_actors(summary.key_actors, article)
    if len(actors) > MAX_ACTORS:
        flags.append(f"kept the first {MAX_ACTORS} of {len(actors)} key actors")
        actors = actors[:MAX_ACTORS]
    numbers = _unsupported_numbers(summary, article)
    if numbers:
        problems.append(f"numbers not in the article: {', '.join(numbers)}")
        flags.append(f"numbers not found in the article: {', '.join(numbers)}")
    text_summary = summary.summary
    if len(text_summary.split()) > max_words:
        problems.append(f"summary has {len(text_summary.split())} words; the limit is {max_words}")
        text_summary = _shorten(text_summary, max_words)
        flags.append(f"summary shortened to {max_words} words")
    all_flags = list(dict.fromkeys([*summary.flags, *flags]))
    grounded = summary.model_copy(update={
        "key_actors": actors, "summary": text_summary, "topics": summary.topics[:MAX_TOPICS], "flags": all_flags,
    })
    return Grounded(grounded, problems)


# --------------------------------------------------------------------------- the editor's own text

_NAME_RUN = re.compile(
    r"[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|(?:bin|ibn|al|de|del|van|von|der|la|le)\b"
    r"(?=(?:\s+(?:bin|ibn|al|de|del|van|von|der|la|le)\b)*\s+[A-Z])))*")
_CALENDAR = frozenset("""monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december""".split())


def editor_text_flags(text: str, article_text: str) -> list[str]:
    """What an editor's rewrite says that the article does not: names (capitalised runs, with
    titles and sentence openers set aside) and numbers. Shown in the desk, like an engine's flags."""
    if not text.strip():
        return []
    article = Article(article_text)
    flags: list[str] = []
    for sentence in split_sentences(text):
        for match in _NAME_RUN.finditer(sentence):
            words = match.group().rstrip(".").split()
            while words and fold(words[0]) in _SENTENCE_OPENERS | _TITLES | _CALENDAR:
                words = words[1:]
            if not words or (match.start() == 0 and len(words) == 1 and words[0] == match.group().split()[0]):
                continue  # a capitalised word opening a sentence is not yet a name
            name = " ".join(words)
            if article.find_name(name) is None:
                flags.append(f"editor's text names '{name}', who is not in the article")
    numbers = sorted({n for n in _NUMBER.findall(text) if _plain_number(n) not in article.numbers})
    if numbers:
        flags.append(f"editor's text has numbers not in the article: {', '.join(numbers)}")
    return list(dict.fromkeys(flags))
