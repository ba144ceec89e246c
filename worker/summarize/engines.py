"""Summarize engines behind one seam: whatever writes the draft, `Engine.summarize` grounds it.

An engine opens an attempt for one article (`start`); the base class takes its answer, checks it
against the article (grounding.py), gives engines that can use one a repair round with the
problems found, and grounds whatever it keeps. The stage, the CLI and `newsdigest eval` all get
their engine from `choose_engine`, so an evaluation measures exactly what the workers store.
"""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from django.conf import settings

from . import grounding, offline
from .errors import BadAnswer, EngineError
from .schemas import ArticleSummary
from .voice import Voice, language_name

if TYPE_CHECKING:
    from .openai_engine import Conversation

log = logging.getLogger("newsdigest.summarize")

# The offline engine's rules (sentence splitting, name cues, stop words) are written for English.
OFFLINE_LANGUAGES = frozenset({"en"})


@dataclass
class EngineResult:
    summary: ArticleSummary  # grounded against the article
    prompt_tokens: int = 0
    completion_tokens: int = 0
    trimmed: bool = False
    requests: int = 0
    mode: str = ""
    repaired: bool = False


class Attempt(Protocol):
    """One article in the hands of an engine, and what it has cost so far."""

    prompt_tokens: int
    completion_tokens: int
    requests: int
    mode: str  # how the server was asked for JSON ("" for no server)
    trimmed: bool  # the article was cut to fit the engine's input budget

    def answer(self) -> ArticleSummary:
        """The draft; raises BadAnswer for one a repair round may fix, EngineError for none."""

    def notes(self) -> list[str]:
        """Flags of the engine's own for the editor (an input it trimmed, a language it cannot do)."""


@runtime_checkable
class Repairable(Attempt, Protocol):
    """An attempt that can take a second request: grounding problems are worth one repair round."""

    def repair(self, problems: list[str]) -> ArticleSummary:
        """A second draft that addresses `problems`."""


class Engine(ABC):
    name: ClassVar[str]
    paid: ClassVar[bool] = False  # whether two workers must never ask for the same summary at once

    @abstractmethod
    def identity(self, voice: Voice) -> tuple[str, str]:
        """(model, prompt_version): together with the content hash and the engine name, the cache key."""

    @abstractmethod
    def start(self, title: str, text: str, *, language: str, voice: Voice) -> Attempt:
        ...

    def summarize(self, title: str, text: str, *, language: str = "", voice: Voice | None = None) -> EngineResult:
        """Summarize one article (in `language`, ISO 639-1, "" if unknown) in the newsletter's
        `voice`, grounded against the article. An EngineError carries the tokens spent."""
        voice = voice or Voice()
        attempt = self.start(title, text, language=language, voice=voice)
        try:
            return self._grounded(attempt, f"{title}\n\n{text}", voice)
        except EngineError as exc:
            exc.prompt_tokens, exc.completion_tokens = attempt.prompt_tokens, attempt.completion_tokens
            raise

    def _grounded(self, attempt: Attempt, article: str, voice: Voice) -> EngineResult:
        def ground(draft: ArticleSummary) -> grounding.Grounded:
            return grounding.ground(draft, article, max_words=voice.max_words)

        problems: list[str] = []
        grounded = None
        try:
            grounded = ground(attempt.answer())
            problems = grounded.problems
        except BadAnswer as exc:
            problems = [str(exc)]
        repaired = False
        if problems and isinstance(attempt, Repairable):
            try:
                grounded, repaired = ground(attempt.repair(problems)), True
            except (BadAnswer, EngineError) as exc:
                if grounded is None:
                    raise EngineError(f"no usable answer after a repair round: {exc}") from exc
                log.info("repair round failed (%s); keeping the first answer, grounded", exc)
        if grounded is None:
            raise EngineError(f"no usable answer: {problems[0]}")
        flags = [*grounded.summary.flags, *attempt.notes()]
        if repaired:
            flags.append("repaired: " + "; ".join(problems))
        summary = grounded.summary.model_copy(update={"flags": list(dict.fromkeys(flags))})
        return EngineResult(summary=summary, prompt_tokens=attempt.prompt_tokens,
                            completion_tokens=attempt.completion_tokens, trimmed=attempt.trimmed,
                            requests=attempt.requests, mode=attempt.mode, repaired=repaired)


class _Rules:
    """The offline engine's attempt: rules, so nothing to pay, nothing to repair (what grounding
    finds unsupported is just dropped)."""

    prompt_tokens = completion_tokens = requests = 0
    mode = ""
    trimmed = False

    def __init__(self, title: str, text: str, language: str, voice: Voice, use_ner: bool):
        self.title, self.text, self.language, self.voice, self.use_ner = title, text, language, voice, use_ner

    def answer(self) -> ArticleSummary:
        return offline.summarize(self.title, self.text, use_ner=self.use_ner)

    def notes(self) -> list[str]:
        """What the offline engine must tell the editor instead of producing silent garbage."""
        language, voice = self.language, self.voice
        flags = []
        if language and language not in OFFLINE_LANGUAGES:
            flags.append(f"offline engine: the article is in {language_name(language)}, which its English rules "
                         "do not handle well; check the summary and actors")
        elif not language:
            flags.append("offline engine: the article's language could not be recognised; check the summary")
        if voice.language and voice.language != language:
            flags.append(f"offline engine cannot translate: summary left in "
                         f"{language_name(language) if language else 'the source language'}, the newsletter asks "
                         f"for {language_name(voice.language)}")
        if voice.tone or voice.instructions:
            flags.append("offline engine ignores the newsletter's tone and editorial instructions")
        return flags


class OfflineEngine(Engine):
    """No network, no model: extractive summary and rule-based actors (offline.py). `use_ner=False`
    runs the rules without the NER model (the fallback when spaCy is missing)."""

    name = "offline"

    def __init__(self, use_ner: bool = True):
        self.use_ner = use_ner

    def identity(self, voice: Voice) -> tuple[str, str]:
        return offline.ENGINE_VERSION, voice.tag()

    def start(self, title: str, text: str, *, language: str, voice: Voice) -> _Rules:
        return _Rules(title, text, language, voice, self.use_ner)


class OpenAICompatibleEngine(Engine):
    """Any OpenAI-compatible server (openai_engine.py); one repair round for grounding problems."""

    name = "openai"
    paid = True

    def __init__(self, model: str | None = None):
        self.model = model or _openai_engine().default_model()

    def identity(self, voice: Voice) -> tuple[str, str]:
        return _openai_engine().identity(self.model, voice.tag())

    def start(self, title: str, text: str, *, language: str, voice: Voice) -> "Conversation":
        return _openai_engine().Conversation(title, text, model=self.model, language=language, voice=voice)


def _openai_engine() -> ModuleType:
    """openai_engine, imported on first use: the openai SDK is tens of MB that processes which never
    summarise with it (delivery workers, the web, the offline engine) need not carry."""
    from . import openai_engine

    return openai_engine


ENGINES: dict[str, type[Engine]] = {engine.name: engine for engine in (OpenAICompatibleEngine, OfflineEngine)}


def choose_engine(name: str | None = None, **options) -> Engine:
    """The engine `name` (default: NEWSDIGEST_SUMMARY_ENGINE); `options` go to its constructor."""
    name = name or settings.NEWSDIGEST_SUMMARY_ENGINE
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name](**options)

