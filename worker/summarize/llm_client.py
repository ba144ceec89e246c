"""The one seam through which Newsdigest talks to an LLM (any OpenAI-compatible server).

One article costs at most NEWSDIGEST_LLM_MAX_RETRIES + 1 requests for an answer plus one
repair request, all through the shared rate limiter. This module owns the retries (the SDK's
are switched off): only here can a 429's Retry-After block every worker's bucket, and only
one layer may retry, or the attempts multiply.
"""

import copy
import hashlib
import html
import itertools
import json
import logging
import math
import random
import re
import threading
import time
import unicodedata
from functools import cache

import openai
import tiktoken
from django.conf import settings
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from .. import broker, ratelimit
from .errors import BadAnswer, EngineError, EngineTransientError
from .schemas import ArticleSummary
from .voice import LENGTHS, Voice, language_name

log = logging.getLogger("newsdigest.llm")

PROMPT_NAME = "summarize"
PROMPT_VERSION = "v3"
CHARS_PER_TOKEN = 4  # the usual estimate for English when tiktoken has no encoding at hand
# An article tag, its attributes bounded (a stray "<article" far from any ">" defangs only itself).
_FENCE_TAG = re.compile(r"<\s*(/?)\s*article\b([^<>]{0,200})>?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)")
_RUNAWAY = re.compile(r"\s{200,}")
_MODE_TTL = 24 * 3600  # re-probe a server's structured-output support daily (servers get upgraded)


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


@cache
def _lookalikes() -> dict[int, str]:
    """Every character Unicode lists as confusable with one printable ASCII character (Cyrillic а,
    Greek ο, ‹, ᐸ, ⁄ ...) mapped to it, one for one, so indices in the mapped text are the original's."""
    from confusable_homoglyphs.confusables import confusables_data  # 1 MB of JSON: load on first fence

    table: dict[int, str] = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        ascii_ = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isprintable()]
        if ascii_:
            table[ord(char)] = ascii_[0]
    return table


def _plain(text: str) -> str:
    """What a model reads: HTML entities decoded (double-encoded ones too), compatibility forms
    folded (full-width ＜／ａｒｔｉｃｌｅ＞ is </article>), invisible format characters (zero-width
    spaces and joiners, bidi controls, soft hyphens) removed. Nothing a reader would see changes."""
    for _ in range(3):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf" or ch in "\n\t")


def fence(text: str) -> str:
    """The article may not close (or reopen) the fence it sits in. Its text is first made plain
    (`_plain`), then every tag that reads as <article> or </article>, letters swapped for
    look-alikes included, is defanged to [article] / [/article]. Look-alikes are only mapped to find
    the tags: the rest of the text (a Russian or Greek article) is sent as written."""
    text = _plain(text)
    skeleton = text.translate(_lookalikes())
    out: list[str] = []
    last = 0
    for match in _FENCE_TAG.finditer(skeleton):
        out.append(text[last:match.start()])
        out.append(f"[{match.group(1)}article{text[match.start(2):match.end(2)]}]")
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def voice_prompt(voice: Voice) -> str:
    sentences, words = LENGTHS.get(voice.length, LENGTHS["standard"])
    return load_prompt("voice").format(
        language=language_name(voice.language) if voice.language else "the article's own language",
        sentences=sentences, words=words, tone=voice.tone or "neutral and factual",
        instructions=fence(voice.instructions) or "none")


def build_messages(title: str, text: str, model: str, *, language: str = "",
                   voice: Voice | None = None) -> tuple[list[dict], bool]:
    body, trimmed = trim_to_budget(text, settings.NEWSDIGEST_LLM_MAX_INPUT_TOKENS, model)
    user = load_prompt("user").format(
        title=fence(" ".join(title.split())), text=fence(body),
        source_language=language_name(language) if language else "a language to be recognised from the text",
        voice=voice_prompt(voice or Voice()),
        trim_note=load_prompt("trim_note").strip() + "\n" if trimmed else "")
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
def _buckets(rpm: int, tpm: int, redis_url: str | None) -> tuple[ratelimit.TokenBucket, ratelimit.TokenBucket | None]:
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
                    broker.shared_state_url())


# Strictest first; a refusal steps one down. "json_object_schema" is JSON mode with the schema
# attached (`{"type": "json_object", "schema": ...}`), which llama-cpp-python's server (and
# llama.cpp's llama-server) turn into a grammar: small local models then cannot leave a field out.
MODES = ("json_schema", "json_object_schema", "json_object", "prompt")
# Refusals one article may spend without taking one of its attempts: the worst case stays the same
# however many modes there are (a server refusing all three structured modes, met once a day,
# costs that one article a retry instead).
FREE_PROBES = 2
_local_modes: dict[str, str] = {}
_local_modes_lock = threading.Lock()


def _mode_key(model: str) -> str:
    server = f"{settings.OPENAI_BASE_URL or 'https://api.openai.com/v1'}|{model}"
    return "newsdigest:llm:mode:" + hashlib.sha256(server.encode()).hexdigest()[:24]


def response_mode(model: str) -> str:
    """How this server (base_url + model) is asked for JSON: the operator's forced mode, else
    what an earlier refusal taught us (remembered a day), else the strictest, "json_schema"."""
    if settings.NEWSDIGEST_LLM_RESPONSE_FORMAT:
        return settings.NEWSDIGEST_LLM_RESPONSE_FORMAT
    key = _mode_key(model)
    client = ratelimit.redis_client()
    if client is not None:
        value = client.get(key)
        return value.decode() if value else MODES[0]
    with _local_modes_lock:
        return _local_modes.get(key, MODES[0])


def remember_mode(model: str, mode: str, why: str = "refused the stricter response_format") -> None:
    key = _mode_key(model)
    log.warning("server %s %s for %s; asking with %s from now on",
                settings.OPENAI_BASE_URL or "api.openai.com", why, model, mode)
    client = ratelimit.redis_client()
    if client is not None:
        client.set(key, mode, ex=_MODE_TTL)
        return
    with _local_modes_lock:
        _local_modes[key] = mode


def _refuses_response_format(exc: openai.APIStatusError) -> bool:
    """A server that cannot do the response_format asked for says so in many ways: 400 or 422
    (OpenAI, vLLM, Ollama), or 500 with pydantic's message (llama-cpp-python: "Input should be
    'text' or 'json_object'"). Any of these naming the format is a refusal, not a failure."""
    text = f"{exc.message} {json.dumps(exc.body, default=str) if exc.body else ''}".lower()
    return exc.status_code in (400, 422, 500) and any(
        word in text for word in ("response_format", "json_schema", "json_object"))


# --------------------------------------------------------------------------- retries

def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff: workers that failed together do not retry together."""
    ceiling = min(settings.NEWSDIGEST_LLM_BACKOFF_MAX, settings.NEWSDIGEST_LLM_BACKOFF_BASE * 2 ** attempt)
    return random.uniform(ceiling / 2, ceiling)


def worst_case_seconds() -> float:
    """The longest one article can spend here: every request timing out (answer attempts, the one
    repair, the free refusals of a response_format) plus every backoff at its longest.
    Must stay below the task's soft time limit; the rate limiter's waits are bounded by the same
    deadline (`Call.deadline`)."""
    requests = settings.NEWSDIGEST_LLM_MAX_RETRIES + 2 + FREE_PROBES
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


class Call:
    """The budget of one article: attempts left and a deadline below the task's soft time limit."""

    def __init__(self, model: str):
        self.model = model
        self.attempts_left = settings.NEWSDIGEST_LLM_MAX_RETRIES + 1
        self.deadline = time.monotonic() + settings.CELERY_TASK_SOFT_TIME_LIMIT - 10
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.mode = response_mode(model)
        self.probes = 0  # response_format refusals met in this article

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _wait_for_limits(self, cost: int) -> int:
        """Take one request and `cost` tokens; returns the tokens taken (to settle later)."""
        requests, tokens = rate_limits()
        taken = 0
        for bucket, amount in ((requests, 1), (tokens, cost)):
            if bucket is None:
                continue
            if not bucket.acquire(min(amount, bucket.capacity), timeout=max(0.0, self.remaining() - 1)):
                raise EngineTransientError("rate limiter queue outlasted the time budget")
            taken = min(amount, bucket.capacity)
        return int(taken) if tokens is not None else 0

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
                        raise EngineTransientError(f"{last_error} (Retry-After {retry_after:.0f}s)") from exc
                    # Everyone waits, not just this worker: the server spoke for the whole account.
                    rate_limits()[0].block_for(retry_after)
                    sleep = retry_after
            except openai.APITimeoutError as exc:
                last_error = f"timed out after {settings.NEWSDIGEST_LLM_TIMEOUT:g}s ({exc.message})"
            except openai.APIConnectionError as exc:
                last_error = f"connection failed: {exc.message} ({type(exc.__cause__).__name__})"
            except openai.APIStatusError as exc:
                if _refuses_response_format(exc):
                    self._step_down(exc)
                    last_error = _describe(exc)
                    continue
                if isinstance(exc, openai.InternalServerError) or exc.status_code in (408, 409):
                    last_error = _describe(exc)
                else:
                    raise EngineError(_describe(exc)) from exc
            if self.attempts_left == 0:
                break
            sleep = sleep or backoff_seconds(settings.NEWSDIGEST_LLM_MAX_RETRIES - self.attempts_left)
            if sleep >= self.remaining():
                break
            log.info("LLM request failed (%s); retrying in %.1fs", last_error, sleep)
            time.sleep(sleep)
        raise EngineTransientError(f"gave up after {self.requests} requests: {last_error}")

    def _step_down(self, exc: openai.APIStatusError) -> None:
        """The server refused this response_format: ask the next way (the probe is not a failure
        of the attempt), unless the operator forced this one or there is nothing looser left."""
        if settings.NEWSDIGEST_LLM_RESPONSE_FORMAT or self.mode == MODES[-1]:
            raise EngineError(f"the server refused response_format {self.mode}: {_describe(exc)}") from exc
        self.mode = MODES[MODES.index(self.mode) + 1]
        remember_mode(self.model, self.mode)
        self.probes += 1
        if self.probes <= FREE_PROBES:
            self.attempts_left += 1

    def check_constrained(self, response: ChatCompletion) -> None:
        """A schema the server applies (json_schema, or the grammar of json_object_schema) makes every
        answer open with "{". An answer in prose or ```json fences under one of those modes means the
        server took the response_format without applying it (transformers serve answers 200 and logs
        "Ignoring unsupported fields"), so the schema never reached the model: from now on it goes into
        the prompt (json_object, which pastes it there), as after a refusal. The answer itself is still
        read; a repair round, if one is needed, already goes the new way."""
        if settings.NEWSDIGEST_LLM_RESPONSE_FORMAT or self.mode not in MODES[:2] or not response.choices:
            return
        content = (response.choices[0].message.content or "").lstrip()
        # Empty is not evidence: a refusal, or a grammar-bound model that produced only whitespace.
        if content and not content.startswith("{"):
            why = f"answered outside the {self.mode} schema it accepted"
            self.mode = "json_object"
            remember_mode(self.model, self.mode, why=why)

    def _request(self, messages: list[dict]) -> ChatCompletion:
        prompt_estimate = sum(count_tokens(m["content"], self.model) for m in messages)
        charged = self._wait_for_limits(request_cost_estimate(prompt_estimate))
        timeout = min(settings.NEWSDIGEST_LLM_TIMEOUT, max(1.0, self.remaining()))
        extra: dict = {}
        if self.mode == "json_schema":
            extra["response_format"] = _strict_schema()
        else:
            # Below json_schema the schema also goes into the prompt: a server may accept
            # "json_object" and ignore the schema beside it, and "prompt" mode sends no
            # response_format at all, for servers that refuse even JSON mode.
            messages = _to_json_mode(messages)
            if self.mode == "json_object_schema":
                extra["response_format"] = {"type": "json_object", "schema": _grammar_schema()}
            elif self.mode == "json_object":
                extra["response_format"] = {"type": "json_object"}
        # api.openai.com wants max_completion_tokens; compatible servers still read max_tokens.
        limit_name = "max_completion_tokens" if settings.OPENAI_BASE_URL is None else "max_tokens"
        self.requests += 1
        response = get_client().chat.completions.create(
            model=self.model, messages=messages, temperature=0.2, timeout=timeout,
            **{limit_name: settings.NEWSDIGEST_LLM_MAX_OUTPUT_TOKENS}, **extra,
        )
        if response.usage:
            used = (response.usage.prompt_tokens or 0) + (response.usage.completion_tokens or 0)
            self.prompt_tokens += response.usage.prompt_tokens or 0
            self.completion_tokens += response.usage.completion_tokens or 0
            tokens = rate_limits()[1]
            if tokens is not None and used:
                # The estimate assumed the longest answer; the per-minute budget gets the difference back.
                tokens.settle(charged - used)
        return response


@cache
def _strict_schema() -> dict:
    """The response_format for structured outputs. openai's public `pydantic_function_tool` makes
    the strict JSON schema (every property required, no additional properties) for a pydantic
    model; its parameters are exactly the schema a json_schema response_format takes.
    Built once: generating it costs more CPU than the rest of a request."""
    schema = openai.pydantic_function_tool(ArticleSummary)["function"]["parameters"]
    return {"type": "json_schema",
            "json_schema": {"schema": schema, "name": ArticleSummary.__name__, "strict": True}}


# Bounds the grammar adds (characters, items): a small model under a grammar otherwise runs on
# inside one string or list until the token limit cuts the JSON off. Together about 1,000 tokens.
_GRAMMAR_BOUNDS = {"summary": 500, "why_it_matters": 200, "name": 60, "role": 60, "action": 120,
                   "evidence": 300, "key_actors": (1, 5), "topics": (1, 3), "flags": (0, 2), "item": 60}


@cache
def _grammar_schema() -> dict:
    """The schema beside json_object, which servers compile into a grammar. Under a grammar the
    cheapest answer a small model finds is an empty actor list; the prompt asks for 3-7 actors, so
    the grammar asks for at least one (an actor the article does not support is dropped by grounding),
    and every string and list is bounded (`_GRAMMAR_BOUNDS`)."""
    schema = copy.deepcopy(_strict_schema()["json_schema"]["schema"])
    actor = schema["$defs"][schema["properties"]["key_actors"]["items"]["$ref"].rsplit("/", 1)[1]]
    for properties in (schema["properties"], actor["properties"]):
        for name, spec in properties.items():
            bound = _GRAMMAR_BOUNDS.get(name)
            if isinstance(bound, int):
                spec["maxLength"] = bound
            elif isinstance(bound, tuple):
                spec["minItems"], spec["maxItems"] = bound
                if spec.get("items", {}).get("type") == "string":
                    spec["items"]["maxLength"] = _GRAMMAR_BOUNDS["item"]
    return schema


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
        raise BadAnswer("the answer had no choices")
    choice = response.choices[0]
    if refusal := getattr(choice.message, "refusal", None):
        raise EngineError(f"model refused: {refusal}")
    content = choice.message.content or ""
    try:
        if choice.finish_reason == "length":
            raise ValueError("truncated")
        data = _extract_json(content)
    except ValueError as exc:  # json.JSONDecodeError included
        if not content.strip() or _RUNAWAY.search(content) or len(content.strip()) < len(content) / 2:
            raise BadAnswer("the answer was empty or ran away into whitespace; answer with compact JSON") from exc
        if choice.finish_reason == "length":
            raise BadAnswer("the answer was cut off at the length limit; answer with shorter, compact JSON") from exc
        raise BadAnswer(f"the answer is not valid JSON ({exc})") from exc
    try:
        return ArticleSummary.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
        raise BadAnswer(f"the answer does not match the schema: {details}") from exc


def _extract_json(content: str) -> object:
    """The answer's JSON: as sent, inside ```json fences, or the first object in prose ("Here is
    the summary: {...}"), which servers without a strict schema (and small models) produce."""
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, re.DOTALL)
    try:
        return json.loads(match.group(1) if match else content)
    except ValueError as first:
        decoder = json.JSONDecoder()
        # A bounded number of starts: a pathological answer full of braces costs little.
        for brace in itertools.islice(re.finditer(r"\{", content), 20):
            try:
                value, _ = decoder.raw_decode(content, brace.start())
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
        raise first
