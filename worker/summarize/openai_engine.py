"""The OpenAI-compatible engine's conversation with the model: one answer, at most one repair.

This is the only module that talks to `llm_client`; the engine class in engines.py grounds what
comes back and decides whether the repair round is needed.
"""

from django.conf import settings
from openai.types.chat import ChatCompletion

from . import llm_client
from .schemas import ArticleSummary
from .voice import Voice


def identity(model: str, voice_tag: str) -> tuple[str, str]:
    """(model, prompt_version): a newsletter's non-default voice is part of the prompt version
    ("v3+1a2b3c4d5e")."""
    version = llm_client.PROMPT_VERSION
    return model, f"{version}+{voice_tag}" if voice_tag else version


def default_model() -> str:
    return settings.NEWSDIGEST_LLM_MODEL


class Conversation:
    """One article's exchange with the server, within one budget (`llm_client.Call`): retries, the
    rate limiter and the response-format probing all happen below this."""

    def __init__(self, title: str, text: str, *, model: str, language: str, voice: Voice):
        self.title, self.text, self.language, self.voice = title, text, language, voice
        self.call = llm_client.Call(model)
        self.messages: list[dict] = []
        self.trimmed = False
        self._response: ChatCompletion | None = None

    @property
    def prompt_tokens(self) -> int:
        return self.call.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.call.completion_tokens

    @property
    def requests(self) -> int:
        return self.call.requests

    @property
    def mode(self) -> str:
        return self.call.mode

    def answer(self) -> ArticleSummary:
        self.messages, self.trimmed = llm_client.build_messages(
            self.title, self.text, self.call.model, language=self.language, voice=self.voice)
        self._response = self.call.complete(self.messages)
        self.call.check_constrained(self._response)
        return llm_client.parse_answer(self._response)

    def repair(self, problems: list[str]) -> ArticleSummary:
        """Show the model its answer and what grounding found wrong with it. The round may use what
        is left of the retry budget, and at least one request."""
        self.call.attempts_left = max(self.call.attempts_left, 1)
        repair = llm_client.load_prompt("repair").format(problems="\n".join(f"- {p}" for p in problems))
        conversation = [*self.messages,
                        {"role": "assistant", "content": self._response.choices[0].message.content or ""},
                        {"role": "user", "content": repair}]
        return llm_client.parse_answer(self.call.complete(conversation))

    def notes(self) -> list[str]:
        return ["article trimmed to fit the model's input budget"] if self.trimmed else []
