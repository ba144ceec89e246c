"""The one seam through which Newsdigest talks to an LLM (any OpenAI-compatible server)."""

import json
import logging
from dataclasses import dataclass
from functools import cache

import openai
from django.conf import settings
from openai.lib._parsing._completions import type_to_response_format_param
from pydantic import ValidationError

from .schemas import ArticleSummary

log = logging.getLogger("newsdigest.llm")

PROMPT_NAME = "summarize"
PROMPT_VERSION = "v1"


class LLMError(Exception):
    """The model could not produce a usable answer; retrying the same call will not help."""


class LLMTransientError(LLMError):
    """Rate limit, timeout, 5xx or dropped connection: worth retrying later."""


@dataclass
class LLMResult:
    summary: ArticleSummary
    prompt_tokens: int
    completion_tokens: int
    trimmed: bool


@cache
def load_prompt(part: str, version: str = PROMPT_VERSION) -> str:
    return (settings.PROMPTS_DIR / PROMPT_NAME / version / f"{part}.txt").read_text(encoding="utf-8")


def get_client() -> openai.OpenAI:
    return openai.OpenAI(
        api_key=settings.OPENAI_API_KEY or "not-needed",
        base_url=settings.OPENAI_BASE_URL,
        timeout=settings.NEWSDIGEST_LLM_TIMEOUT,
        max_retries=settings.NEWSDIGEST_LLM_MAX_RETRIES,
    )


def trim_to_budget(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut on a sentence boundary so the model never sees half a sentence."""
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("? "), cut.rfind("! "))
    return (cut[: end + 1] if end > 0 else cut), True


def build_messages(title: str, text: str) -> tuple[list[dict], bool]:
    # ~4 characters per token is the usual estimate for English text.
    body, trimmed = trim_to_budget(text, settings.NEWSDIGEST_LLM_MAX_INPUT_TOKENS * 4)
    trim_note = "(The article was shortened to fit; summarise what is here.)" if trimmed else ""
    user = load_prompt("user").format(title=title, text=body, trim_note=trim_note)
    return [{"role": "system", "content": load_prompt("system")}, {"role": "user", "content": user}], trimmed


def summarize(title: str, text: str, *, model: str | None = None) -> LLMResult:
    model = model or settings.NEWSDIGEST_LLM_MODEL
    messages, trimmed = build_messages(title, text)
    try:
        response = get_client().chat.completions.create(
            model=model,
            messages=messages,
            response_format=type_to_response_format_param(ArticleSummary),
            temperature=0.2,
        )
    except (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
            openai.InternalServerError) as exc:
        raise LLMTransientError(f"{type(exc).__name__}: {exc}") from exc
    except openai.APIStatusError as exc:
        raise LLMError(f"HTTP {exc.status_code}: {exc.message}") from exc
    choice = response.choices[0]
    if getattr(choice.message, "refusal", None):
        raise LLMError(f"model refused: {choice.message.refusal}")
    if choice.finish_reason == "length":
        raise LLMError("answer truncated (finish_reason=length)")
    try:
        parsed = ArticleSummary.model_validate(json.loads(choice.message.content or ""))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise LLMError(f"answer is not a valid summary: {exc}") from exc
    usage = response.usage
    return LLMResult(
        summary=parsed,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        trimmed=trimmed,
    )
