"""Summarize stage: one interface, two engines (openai, offline), one Summary per article version."""

import logging
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum

from . import grounding, llm, offline
from .models import Article, Digest, Summary, transition

log = logging.getLogger("newsdigest.summarize")

ENGINES = ("openai", "offline")


def engine_identity(engine: str) -> tuple[str, str]:
    """(model, prompt_version): together with the content hash, the cache key."""
    if engine == "openai":
        return settings.NEWSDIGEST_LLM_MODEL, llm.PROMPT_VERSION
    if engine == "offline":
        return offline.ENGINE_VERSION, ""
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def summarize_article(article_id: int, engine: str | None = None, force: bool = False) -> Summary:
    """Summarize once per (text, engine, model, prompt); later calls return the stored row.

    llm.py has already retried transient errors; whatever LLM error reaches here marks the
    article failed with the reason (so the digest builds without it) and is re-raised. An
    editor's retry (`newsdigest summarize --article ID --force`) moves it back to summarized.
    """
    engine = engine or settings.NEWSDIGEST_SUMMARY_ENGINE
    model, prompt_version = engine_identity(engine)
    article = Article.objects.get(pk=article_id)
    key = {"content_hash": article.content_hash, "engine": engine, "model": model,
           "prompt_version": prompt_version}
    cached = Summary.objects.filter(**key).first()
    if cached and not force:
        _mark_summarized(article)
        return cached

    if engine == "offline":
        # Cheap rules need no repair round: what the article does not support is just dropped.
        result = grounding.ground(offline.summarize(article.title, article.text),
                                  f"{article.title}\n\n{article.text}").summary
        fields = {"prompt_tokens": 0, "completion_tokens": 0, "trimmed": False, "cost_usd": Decimal(0)}
    else:
        try:
            answer = llm.summarize(article.title, article.text, model=model)
        except llm.LLMError as exc:
            # A summarized article keeps serving its earlier summary; only a new or failed one fails.
            transition(Article.objects.filter(pk=article.pk), from_status=[Article.Status.NEW,
                       Article.Status.FAILED], to_status=Article.Status.FAILED, last_error=str(exc))
            raise
        result = answer.summary
        fields = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                  "trimmed": answer.trimmed,
                  "cost_usd": cost_usd(model, answer.prompt_tokens, answer.completion_tokens)}

    values = {
        "headline": result.headline, "summary": result.summary, "why_it_matters": result.why_it_matters,
        "key_actors": [a.model_dump(mode="json") for a in result.key_actors],
        "topics": result.topics, "flags": result.flags, **fields,
    }
    try:
        with transaction.atomic():
            summary, _ = Summary.objects.update_or_create(defaults={**values, "article": article}, **key)
    except IntegrityError:
        # A concurrent worker stored the same summary first; theirs is as good as ours.
        summary = Summary.objects.get(**key)
    _mark_summarized(article)
    return summary


def _mark_summarized(article: Article) -> None:
    transition(Article.objects.filter(pk=article.pk), from_status=[Article.Status.NEW, Article.Status.FAILED],
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
