"""Thin Celery tasks: take primary keys, refetch, call one stage function, retry only
named transient errors. The same functions run inline in the embedded default."""

import logging

from celery import shared_task
from django.db import transaction

from . import deliver, llm, summarize

log = logging.getLogger("newsdigest.tasks")


@shared_task(bind=True, autoretry_for=(llm.LLMTransientError,), retry_backoff=5, retry_backoff_max=300,
             retry_jitter=True, max_retries=5)
def summarize_article(self, article_id: int, engine: str | None = None, force: bool = False) -> int:
    return summarize.summarize_article(article_id, engine=engine, force=force).pk


@shared_task(bind=True)
def start_send(self, digest_id: int) -> int:
    batches = deliver.start_send(digest_id)
    for batch in batches:
        send_batch.delay(batch)
    return sum(map(len, batches))


@shared_task(bind=True, autoretry_for=(deliver.DeliveryTransientError,), retry_backoff=2,
             retry_backoff_max=60, retry_jitter=True, max_retries=8)
def send_batch(self, delivery_ids: list[int]) -> dict[str, int]:
    return deliver.send_batch(delivery_ids)


@shared_task
def sweep_deliveries() -> int:
    """Periodic safety net: re-queue rows of dead workers and re-nudge rows nobody picked up."""
    deliver.expired_leases_to_queue()
    nudged = 0
    for digest_id in deliver.sending_digest_ids():
        for batch in deliver.queued_batches(digest_id):
            send_batch.delay(batch)
            nudged += len(batch)
        deliver.finish_if_done(digest_id)
    return nudged


def enqueue_after_commit(task, *args, **kwargs) -> None:
    """Publish only once the rows the task will read are committed."""
    transaction.on_commit(lambda: task.delay(*args, **kwargs))
