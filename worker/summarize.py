"""Summarize stage: one interface, two engines (openai, offline), one Summary per article version."""

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum

from . import grounding, llm, offline, ratelimit
from .models import Article, Digest, Summary
from .voice import Voice, detect_language, language_name

log = logging.getLogger("newsdigest.summarize")

ENGINES = ("openai", "offline")


# The offline engine's rules (sentence splitting, name cues, stop words) are written for English.
OFFLINE_LANGUAGES = frozenset({"en"})


def engine_identity(engine: str, voice: Voice | None = None) -> tuple[str, str]:
    """(model, prompt_version): together with the content hash, the cache key. A newsletter's
    non-default voice is part of the prompt version ("v3+1a2b3c4d5e")."""
    tag = (voice or Voice()).tag()
    if engine == "openai":
        return settings.NEWSDIGEST_LLM_MODEL, f"{llm.PROMPT_VERSION}+{tag}" if tag else llm.PROMPT_VERSION
    if engine == "offline":
        return offline.ENGINE_VERSION, tag
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def article_voice(article: Article) -> Voice:
    """The voice of the newsletter the article's source feeds; the default voice otherwise."""
    source = article.source
    return Voice.of(source.newsletter if source is not None else None)


def ensure_language(article: Article) -> str:
    """The article's ISO 639-1 language, detected and stored once if the source gave none."""
    if not article.language:
        detected = detect_language(f"{article.title}\n{article.text}")
        if detected:
            Article.objects.filter(pk=article.pk, language="").update(language=detected)
            article.language = detected
    return article.language


def offline_language_flags(language: str, voice: Voice) -> list[str]:
    """What the offline engine must tell the editor instead of producing silent garbage."""
    flags = []
    if language and language not in OFFLINE_LANGUAGES:
        flags.append(f"offline engine: the article is in {language_name(language)}, which its English rules do "
                     "not handle well; check the summary and actors")
    elif not language:
        flags.append("offline engine: the article's language could not be recognised; check the summary")
    if voice.language and voice.language != language:
        flags.append(f"offline engine cannot translate: summary left in "
                     f"{language_name(language) if language else 'the source language'}, the newsletter asks "
                     f"for {language_name(voice.language)}")
    if voice.tone or voice.instructions:
        flags.append("offline engine ignores the newsletter's tone and editorial instructions")
    return flags


def summarize_article(article_id: int, engine: str | None = None, force: bool = False) -> Summary:
    """Summarize once per (text, engine, model, prompt + voice); later calls return the stored row.

    llm.py has already retried transient errors; whatever LLM error reaches here marks the
    article failed with the reason (so the digest builds without it), records the tokens it cost,
    and is re-raised. An editor's retry (`newsdigest summarize --article ID --force`) moves it
    back to summarized. While one worker asks the model, a short Redis lock makes a second
    worker wait for its summary instead of paying for the same one.
    """
    engine = engine or settings.NEWSDIGEST_SUMMARY_ENGINE
    article = Article.objects.select_related("source__newsletter").get(pk=article_id)
    voice = article_voice(article)
    model, prompt_version = engine_identity(engine, voice)
    key = {"content_hash": article.content_hash, "engine": engine, "model": model,
           "prompt_version": prompt_version}
    cached = Summary.objects.filter(**key).first()
    if cached and not force:
        _mark_summarized(article)
        return cached
    language = ensure_language(article)

    if engine == "offline":
        # Cheap rules need no repair round: what the article does not support is just dropped.
        result = grounding.ground(offline.summarize(article.title, article.text),
                                  f"{article.title}\n\n{article.text}", max_words=voice.max_words).summary
        result = result.model_copy(update={"flags": [*result.flags, *offline_language_flags(language, voice)]})
        fields = {"prompt_tokens": 0, "completion_tokens": 0, "trimmed": False, "cost_usd": Decimal(0)}
    else:
        with summary_lock(key):
            # The worker we may have waited for has stored this very summary: no second payment.
            if not force and (theirs := Summary.objects.filter(**key).first()) is not None:
                _mark_summarized(article)
                return theirs
            try:
                answer = llm.summarize(article.title, article.text, model=model, language=language, voice=voice)
            except llm.LLMError as exc:
                # A summarized article keeps serving its earlier summary; only a new or failed one fails.
                Article.transition(article.pk, from_status=[Article.Status.NEW, Article.Status.FAILED],
                                   to_status=Article.Status.FAILED, last_error=str(exc))
                Article.objects.filter(pk=article.pk).update(
                    failed_prompt_tokens=F("failed_prompt_tokens") + exc.prompt_tokens,
                    failed_completion_tokens=F("failed_completion_tokens") + exc.completion_tokens)
                raise
        result = answer.summary
        fields = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                  "trimmed": answer.trimmed,
                  "cost_usd": cost_usd(model, answer.prompt_tokens, answer.completion_tokens)}

    values = {
        "headline": result.headline, "summary": result.summary, "why_it_matters": result.why_it_matters,
        "key_actors": [a.model_dump(mode="json") for a in result.key_actors],
        "topics": result.topics, "flags": list(dict.fromkeys(result.flags)), **fields,
    }
    try:
        with transaction.atomic():
            summary, _ = Summary.objects.update_or_create(defaults={**values, "article": article}, **key)
    except IntegrityError:
        # A concurrent worker stored the same summary first; theirs is as good as ours.
        summary = Summary.objects.get(**key)
    _mark_summarized(article)
    return summary


@contextmanager
def summary_lock(key: dict) -> Iterator[None]:
    """Hold the (article text, engine, model, prompt) lock while the model is asked, waiting for
    another holder first. Without Redis (the embedded default, one process) nobody races."""
    client = ratelimit.redis_client()
    if client is None:
        yield
        return
    name = "newsdigest:summarize:" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    token = uuid.uuid4().hex
    ttl = settings.NEWSDIGEST_SUMMARIZE_LOCK_SECONDS
    deadline = time.monotonic() + ttl
    while not client.set(name, token, nx=True, ex=ttl):
        if time.monotonic() > deadline:
            raise llm.LLMTransientError("another worker is still summarizing this article")
        time.sleep(0.2)
    try:
        yield
    finally:
        _release(client, name, token)


_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _release(client, name: str, token: str) -> None:
    # Only our own lock: one that expired and was taken by another worker is theirs.
    client.eval(_RELEASE, 1, name, token)


def _mark_summarized(article: Article) -> None:
    Article.transition(article.pk, from_status=[Article.Status.NEW, Article.Status.FAILED],
                       to_status=Article.Status.SUMMARIZED, last_error="")


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """From the per-1M-token price table in settings; unknown (local) models cost nothing."""
    price_in, price_out = settings.NEWSDIGEST_LLM_PRICES.get(model, (0.0, 0.0))
    cost = (Decimal(str(price_in)) * prompt_tokens + Decimal(str(price_out)) * completion_tokens) / 1_000_000
    return cost.quantize(Decimal("0.000001"))


def digest_token_totals(digest: Digest) -> dict:
    """What the summaries in one digest cost (each summary counted once, however many recipients)."""
    totals = Summary.objects.filter(pk__in=digest.items.exclude(summary=None).values("summary")).aggregate(
        summaries=Count("pk"), prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
        cost_usd=Sum("cost_usd"))
    return {"summaries": totals["summaries"], "prompt_tokens": totals["prompt_tokens"] or 0,
            "completion_tokens": totals["completion_tokens"] or 0,
            "cost_usd": Decimal(totals["cost_usd"] or 0).quantize(Decimal("0.000001"))}


def pending_article_ids() -> list[int]:
    return list(Article.objects.filter(status=Article.Status.NEW).order_by("pk").values_list("pk", flat=True))


def summary_as_json(summary: Summary) -> dict:
    """The fixed shape `newsdigest summarize --json` prints."""
    return {
        "article_id": summary.article_id,
        "title": summary.article.title,
        "headline": summary.headline,
        "summary": summary.summary,
        "why_it_matters": summary.why_it_matters,
        "key_actors": summary.key_actors,
        "topics": summary.topics,
        "flags": summary.flags,
        "engine": summary.engine,
        "model": summary.model,
        "prompt_version": summary.prompt_version,
        "tokens": {"prompt": summary.prompt_tokens, "completion": summary.completion_tokens},
    }
