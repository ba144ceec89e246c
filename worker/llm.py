"""The one seam through which Newsdigest talks to an LLM (any OpenAI-compatible server).

One article costs at most NEWSDIGEST_LLM_MAX_RETRIES + 1 requests for an answer plus one
repair request, all through the shared rate limiter. This module owns the retries (the SDK's
are switched off): only here can a 429's Retry-After block every worker's bucket, and only
one layer may retry, or the attempts multiply.
"""

import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass
from functools import cache

import openai
import tiktoken
from django.conf import settings
from openai.lib._parsing._completions import type_to_response_format_param
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from . import grounding, ratelimit
from .schemas import ArticleSummary

log = logging.getLogger("newsdigest.llm")

PROMPT_NAME = "summarize"
PROMPT_VERSION = "v2"
CHARS_PER_TOKEN = 4  # the usual estimate for English when tiktoken has no encoding at hand
_FENCE_TAG = re.compile(r"<\s*(/?)\s*article\b[^>]*>", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)")
_RUNAWAY = re.compile(r"\s{200,}")
_MODE_TTL = 24 * 3600  # re-probe a server's structured-output support daily (servers get upgraded)


class LLMError(Exception):
    """The model could not produce a usable answer; the article is marked failed with this reason."""


class LLMTransientError(LLMError):
    """Rate limit, timeout, 5xx or dropped connection that outlasted every retry (or the time budget)."""


class _BadAnswer(Exception):
    """An answer that a repair round may fix: not JSON, not the schema, truncated, whitespace runaway."""


@dataclass
class LLMResult:
    summary: ArticleSummary
    prompt_tokens: int
    completion_tokens: int
    trimmed: bool
    requests: int = 0
    mode: str = "json_schema"
    repaired: bool = False


# --------------------------------------------------------------------------- prompts and tokens

@cache
def load_prompt(part: str, version: str = PROMPT_VERSION) -> str:
    return (settings.PROMPTS_DIR / PROMPT_NAME / version / f"{part}.txt").read_text(encoding="utf-8")


@cache
def _encoding(model: str) -> tiktoken.Encoding | None:
    """The model's tokenizer, or None: tiktoken downloads encodings on first use (pre-seed
    TIKTOKEN_CACHE_DIR on machines without network), and a machine without network or a model
    tiktoken does not know falls back to the estimate. The download has no timeout of its own,
    so it runs in a thread we stop waiting for."""
    found: list = []

    def load() -> None:
        try:
            found.append(tiktoken.encoding_for_model(model))
        except Exception as exc:  # KeyError for unknown models, requests' errors offline
            found.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(10)
    if found and isinstance(found[0], tiktoken.Encoding):
        return found[0]
    reason = type(found[0]).__name__ if found else "download timed out"
    log.warning("no tiktoken encoding for %s (%s); estimating %d chars per token", model, reason, CHARS_PER_TOKEN)
    return None


def count_tokens(text: str, model: str) -> int:
    encoding = _encoding(model)
    if encoding is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(encoding.encode(text, disallowed_special=()))


def trim_to_budget(text: str, max_tokens: int, model: str) -> tuple[str, bool]:
    """Cut on a sentence boundary so the model never sees half a sentence."""
    if count_tokens(text, model) <= max_tokens:
        return text, False
    encoding = _encoding(model)
    if encoding is None:
        cut = text[: max_tokens * CHARS_PER_TOKEN]
    else:
        cut = encoding.decode(encoding.encode(text, disallowed_special=())[:max_tokens])
    ends = [m.end() for m in _SENTENCE_END.finditer(cut + " ")]
    return (cut[: ends[-1]] if ends else cut).rstrip(), True


def fence(text: str) -> str:
    """The article may not close (or reopen) the fence it sits in: its own tags are defanged."""
    return _FENCE_TAG.sub(lambda m: f"[{m.group(1)}article]", text)


def build_messages(title: str, text: str, model: str) -> tuple[list[dict], bool]:
    body, trimmed = trim_to_budget(text, settings.NEWSDIGEST_LLM_MAX_INPUT_TOKENS, model)
    user = load_prompt("user").format(title=fence(" ".join(title.split())), text=fence(body),
                                      trim_note=load_prompt("trim_note").strip() if trimmed else "")
    return [{"role": "system", "content": load_prompt("system")}, {"role": "user", "content": user}], trimmed


# --------------------------------------------------------------------------- client, limits, mode

@cache
def _client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    # One client (and connection pool) per process and server; max_retries=0: see the module docstring.
    return openai.OpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0)


def get_client() -> openai.OpenAI:
    return _client(settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.NEWSDIGEST_LLM_TIMEOUT)


def request_cost_estimate(prompt_tokens: int) -> int:
    return prompt_tokens + settings.NEWSDIGEST_LLM_MAX_OUTPUT_TOKENS


@cache
def _buckets(rpm: int, tpm: int, redis_url: str) -> tuple[ratelimit.TokenBucket, ratelimit.TokenBucket | None]:
    """Shared by every worker: requests are paced evenly (burst of 1, so a minute never sees more
    than RPM + 1); the token bucket holds one maximal request, so a long article can always pass.
    Without an RPM limit the request bucket is a wide-open gate that a 429's Retry-After still closes.
    `redis_url` is only part of the cache key: a changed setting must not reuse old buckets."""
    client = ratelimit.redis_client()
    if rpm > 0:
        requests = ratelimit.TokenBucket("llm:rpm", rpm / 60, 1, client=client)
    else:
        requests = ratelimit.TokenBucket("llm:gate", 1e9, 1e9, client=client)
    largest = request_cost_estimate(settings.NEWSDIGEST_LLM_MAX_INPUT_TOKENS + 1500)
    tokens = ratelimit.TokenBucket("llm:tpm", tpm / 60, min(tpm, largest), client=client) if tpm > 0 else None
    return requests, tokens


def rate_limits() -> tuple[ratelimit.TokenBucket, ratelimit.TokenBucket | None]:
    return _buckets(settings.NEWSDIGEST_LLM_RPM, settings.NEWSDIGEST_LLM_TPM,
                    settings.REDIS_URL or settings.CELERY_BROKER_URL)


_local_modes: dict[str, str] = {}
_local_modes_lock = threading.Lock()


def _mode_key(model: str) -> str:
    server = f"{settings.OPENAI_BASE_URL or 'https://api.openai.com/v1'}|{model}"
    return "newsdigest:llm:mode:" + hashlib.sha256(server.encode()).hexdigest()[:24]


def response_mode(model: str) -> str:
    """"json_schema" until this server (base_url + model) refused it once, then "json_object"."""
    key = _mode_key(model)
    client = ratelimit.redis_client()
    if client is not None:
        value = client.get(key)
        return value.decode() if value else "json_schema"
    with _local_modes_lock:
        return _local_modes.get(key, "json_schema")


def remember_json_mode(model: str) -> None:
    key = _mode_key(model)
    log.warning("server refused json_schema for %s; using JSON mode with the schema in the prompt", model)
    client = ratelimit.redis_client()
    if client is not None:
        client.set(key, "json_object", ex=_MODE_TTL)
        return
    with _local_modes_lock:
        _local_modes[key] = "json_object"


def _refuses_json_schema(exc: openai.APIStatusError) -> bool:
    text = f"{exc.message} {json.dumps(exc.body, default=str) if exc.body else ''}".lower()
    return exc.status_code in (400, 422) and ("response_format" in text or "json_schema" in text)


# --------------------------------------------------------------------------- retries

def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff: workers that failed together do not retry together."""
    ceiling = min(settings.NEWSDIGEST_LLM_BACKOFF_MAX, settings.NEWSDIGEST_LLM_BACKOFF_BASE * 2 ** attempt)
    return random.uniform(ceiling / 2, ceiling)


def worst_case_seconds() -> float:
    """The longest one article can spend here: every request timing out (answer attempts, the one
    repair, the one json_schema probe) plus every backoff at its longest. Must stay below the task's
    soft time limit; the rate limiter's waits are bounded by the same deadline (`_Call.deadline`)."""
    requests = settings.NEWSDIGEST_LLM_MAX_RETRIES + 3
    sleeps = settings.NEWSDIGEST_LLM_MAX_RETRIES + 1
    longest_sleep = max(settings.NEWSDIGEST_LLM_BACKOFF_MAX, settings.NEWSDIGEST_LLM_MAX_RETRY_AFTER)
    return requests * settings.NEWSDIGEST_LLM_TIMEOUT + sleeps * longest_sleep


def _describe(exc: openai.APIStatusError) -> str:
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    return f"HTTP {exc.status_code}: {message or exc.message}"


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None


class _Call:
    """The budget of one article: attempts left and a deadline below the task's soft time limit."""

    def __init__(self, model: str):
        self.model = model
        self.attempts_left = settings.NEWSDIGEST_LLM_MAX_RETRIES + 1
        self.deadline = time.monotonic() + settings.CELERY_TASK_SOFT_TIME_LIMIT - 10
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.mode = response_mode(model)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _wait_for_limits(self, cost: int) -> None:
        requests, tokens = rate_limits()
        for bucket, amount in ((requests, 1), (tokens, cost)):
            if bucket is None:
                continue
            if not bucket.acquire(min(amount, bucket.capacity), timeout=max(0.0, self.remaining() - 1)):
                raise LLMTransientError("rate limiter queue outlasted the time budget")

    def complete(self, messages: list[dict]) -> ChatCompletion:
        """One answer from the server, retried on transient failures within the budget."""
        last_error = "no attempt made"
        while self.attempts_left > 0:
            self.attempts_left -= 1
            sleep = 0.0
            try:
                return self._request(messages)
            except openai.RateLimitError as exc:
                last_error = _describe(exc)
                retry_after = _retry_after(exc)
                if retry_after is not None:
                    if retry_after > settings.NEWSDIGEST_LLM_MAX_RETRY_AFTER:
                        raise LLMTransientError(f"{last_error} (Retry-After {retry_after:.0f}s)") from exc
                    # Everyone waits, not just this worker: the server spoke for the whole account.
                    rate_limits()[0].block_for(retry_after)
                    sleep = retry_after
            except openai.APITimeoutError as exc:
                last_error = f"timed out after {settings.NEWSDIGEST_LLM_TIMEOUT:g}s ({exc.message})"
            except openai.APIConnectionError as exc:
                last_error = f"connection failed: {exc.message} ({type(exc.__cause__).__name__})"
            except openai.InternalServerError as exc:
                last_error = _describe(exc)
            except openai.APIStatusError as exc:
                if self.mode == "json_schema" and _refuses_json_schema(exc):
                    remember_json_mode(self.model)
                    self.mode = "json_object"
                    self.attempts_left += 1  # the probe is not a failure of this attempt
                    continue
                if exc.status_code in (408, 409):
                    last_error = _describe(exc)
                else:
                    raise LLMError(_describe(exc)) from exc
            if self.attempts_left == 0:
                break
            sleep = sleep or backoff_seconds(settings.NEWSDIGEST_LLM_MAX_RETRIES - self.attempts_left)
            if sleep >= self.remaining():
                break
            log.info("LLM request failed (%s); retrying in %.1fs", last_error, sleep)
            time.sleep(sleep)
        raise LLMTransientError(f"gave up after {self.requests} requests: {last_error}")

    def _request(self, messages: list[dict]) -> ChatCompletion:
        prompt_estimate = sum(count_tokens(m["content"], self.model) for m in messages)
        self._wait_for_limits(request_cost_estimate(prompt_estimate))
        timeout = min(settings.NEWSDIGEST_LLM_TIMEOUT, max(1.0, self.remaining()))
        if self.mode == "json_schema":
            response_format = _strict_schema()
        else:
            response_format = {"type": "json_object"}
            messages = _to_json_mode(messages)
        # api.openai.com wants max_completion_tokens; compatible servers still read max_tokens.
        limit_name = "max_completion_tokens" if settings.OPENAI_BASE_URL is None else "max_tokens"
        self.requests += 1
        response = get_client().chat.completions.create(
            model=self.model, messages=messages, response_format=response_format, temperature=0.2,
            timeout=timeout, **{limit_name: settings.NEWSDIGEST_LLM_MAX_OUTPUT_TOKENS},
        )
        if response.usage:
            self.prompt_tokens += response.usage.prompt_tokens or 0
            self.completion_tokens += response.usage.completion_tokens or 0
        return response


@cache
def _strict_schema() -> dict:
    # Built once: generating it costs more CPU than the rest of a request.
    return type_to_response_format_param(ArticleSummary)


def _to_json_mode(messages: list[dict]) -> list[dict]:
    """Paste the schema into the system prompt (once) for servers without json_schema."""
    notes = load_prompt("schema_notes").format(
        schema=json.dumps(ArticleSummary.model_json_schema(), ensure_ascii=False))
    if messages[0]["content"].endswith(notes):
        return messages
    return [{**messages[0], "content": messages[0]["content"] + notes}, *messages[1:]]


# --------------------------------------------------------------------------- answers

def parse_answer(response: ChatCompletion) -> ArticleSummary:
    """Validate with pydantic even under strict mode: not every server enforces the schema."""
    if not response.choices:
        raise _BadAnswer("the answer had no choices")
    choice = response.choices[0]
    if refusal := getattr(choice.message, "refusal", None):
        raise LLMError(f"model refused: {refusal}")
    content = choice.message.content or ""
    try:
        if choice.finish_reason == "length":
            raise ValueError("truncated")
        data = json.loads(_strip_code_fence(content))
    except ValueError as exc:  # json.JSONDecodeError included
        if not content.strip() or _RUNAWAY.search(content) or len(content.strip()) < len(content) / 2:
            raise _BadAnswer("the answer was empty or ran away into whitespace; answer with compact JSON") from exc
        if choice.finish_reason == "length":
            raise _BadAnswer("the answer was cut off at the length limit; answer with shorter, compact JSON") from exc
        raise _BadAnswer(f"the answer is not valid JSON ({exc})") from exc
    try:
        return ArticleSummary.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
        raise _BadAnswer(f"the answer does not match the schema: {details}") from exc


def _strip_code_fence(content: str) -> str:
    # JSON-mode servers sometimes wrap the object in ```json fences.
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, re.DOTALL)
    return match.group(1) if match else content


def summarize(title: str, text: str, *, model: str | None = None) -> LLMResult:
    """Summarize one article: one answer, at most one repair round, grounded against the article."""
    model = model or settings.NEWSDIGEST_LLM_MODEL
    call = _Call(model)
    messages, trimmed = build_messages(title, text, model)
    article_text = f"{title}\n\n{text}"
    response = call.complete(messages)
    problems: list[str] = []
    grounded = None
    try:
        grounded = grounding.ground(parse_answer(response), article_text)
        problems = grounded.problems
    except _BadAnswer as exc:
        problems = [str(exc)]
    repaired = False
    if problems:
        # One repair round; it may use what is left of the retry budget, and at least one request.
        call.attempts_left = max(call.attempts_left, 1)
        repair = load_prompt("repair").format(problems="\n".join(f"- {p}" for p in problems))
        conversation = [*messages, {"role": "assistant", "content": response.choices[0].message.content or ""},
                        {"role": "user", "content": repair}]
        try:
            second = grounding.ground(parse_answer(call.complete(conversation)), article_text)
            grounded, repaired = second, True
        except (_BadAnswer, LLMError) as exc:
            if grounded is None:
                raise LLMError(f"no usable answer after a repair round: {exc}") from exc
            log.info("repair round failed (%s); keeping the first answer, grounded", exc)
    flags = list(grounded.summary.flags)
    if trimmed:
        flags.append("article trimmed to fit the model's input budget")
    if repaired:
        flags.append("repaired: " + "; ".join(problems))
    summary = grounded.summary.model_copy(update={"flags": list(dict.fromkeys(flags))})
    return LLMResult(summary=summary, prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens,
                     trimmed=trimmed, requests=call.requests, mode=call.mode, repaired=repaired)
