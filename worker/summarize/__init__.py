"""Summarize stage: one Summary per article version, written by the engine `choose_engine` picks
(engines.py), grounded against the article, cached by text, engine, model, prompt and voice."""

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum

from .. import ratelimit
from ..models import Article, Digest, Summary
from .engines import choose_engine
from .errors import EngineError, EngineTransientError
from .voice import Voice, detect_language

log = logging.getLogger("newsdigest.summarize")


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


def summarize_article(article_id: int, engine: str | None = None, force: bool = False) -> Summary:
    """Summarize once per (text, engine, model, prompt + voice); later calls return the stored row.

    The LLM client has already retried transient errors; whatever engine error reaches here marks
    the article failed with the reason (so the digest builds without it), records the tokens it
    cost, and is re-raised. An editor's retry (`newsdigest summarize --article ID --force`) moves it
    back to summarized. While one worker asks a paid model, a short Redis lock makes a second
    worker wait for its summary instead of paying for the same one.
    """
    chosen = choose_engine(engine)
    article = Article.objects.select_related("source__newsletter").get(pk=article_id)
    voice = article_voice(article)
    model, prompt_version = chosen.identity(voice)
    key = {"content_hash": article.content_hash, "engine": chosen.name, "model": model,
           "prompt_version": prompt_version}
    cached = Summary.objects.filter(**key).first()
    if cached and not force:
        _mark_summarized(article)
        return cached
    language = ensure_language(article)

    with summary_lock(key) if chosen.paid else nullcontext():
        # The worker we may have waited for has stored this very summary: no second payment.
        if chosen.paid and not force and (theirs := Summary.objects.filter(**key).first()) is not None:
            _mark_summarized(article)
            return theirs
        try:
            answer = chosen.summarize(article.title, article.text, language=language, voice=voice)
        except EngineError as exc:
            # A summarized article keeps serving its earlier summary; only a new or failed one fails.
            Article.transition(article.pk, from_status=[Article.Status.NEW, Article.Status.FAILED],
                               to_status=Article.Status.FAILED, last_error=str(exc))
            Article.objects.filter(pk=article.pk).update(
                failed_prompt_tokens=F("failed_prompt_tokens") + exc.prompt_tokens,
                failed_completion_tokens=F("failed_completion_tokens") + exc.completion_tokens)
            raise
    result = answer.summary
    fields = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
              "trimmed": answer.trimmed, "cost_usd": cost_usd(model, answer.prompt_tokens, answer.completion_tokens)}

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
            raise EngineTransientError("another worker is still summarizing this article")
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
