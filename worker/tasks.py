"""Thin Celery tasks: take primary keys, refetch, call one stage function, retry only
named transient errors. The same functions run inline in the embedded default.

Each task registers itself with worker.jobs, the interface the stages enqueue through: this module
may import the stages, never the other way round."""

import logging

from celery import shared_task

from . import clicks, deliver, jobs, schedule, subscribers, summarize
from .ingest import feeds
from .summarize.errors import EngineError
from .summarize.regenerate import run_regeneration

log = logging.getLogger("newsdigest.tasks")


@jobs.register
@shared_task(bind=True)
def summarize_article(self, article_id: int, engine: str | None = None, force: bool = False) -> int | None:
    # No Celery retries: the LLM client owns them (with Retry-After shared through the rate limiter), and a
    # second layer would multiply the attempts. A failure is already recorded on the article.
    try:
        return summarize.summarize_article(article_id, engine=engine, force=force).pk
    except EngineError as exc:
        log.warning("article %s not summarized: %s", article_id, exc)
        return None


@jobs.register
@shared_task
def regenerate_summary(regeneration_id: int) -> str:
    """The desk's "Regenerate summary", off the web request; the failure is recorded on the row."""
    return run_regeneration(regeneration_id).status


# The delivery tasks keep no result: the database holds their outcome, and publishing them then needs
# the broker alone (a result store that is down made `send` hang ~20 s before failing).
@jobs.register
@shared_task(bind=True, ignore_result=True)
def start_send(self, digest_id: int) -> int:
    """Fan-out: create the Delivery rows (idempotent) and publish their batches after commit."""
    return deliver.publish_batches(deliver.fan_out(digest_id))


@jobs.register
@shared_task(bind=True, autoretry_for=(deliver.DeliveryTransientError,), retry_backoff=2,
             retry_backoff_max=60, retry_jitter=True, max_retries=8, ignore_result=True)
def send_batch(self, delivery_ids: list[int]) -> dict[str, int]:
    result = deliver.send_batch(delivery_ids)
    if result.retry_ids:
        # Countdown stays below the broker's visibility timeout (settings check); if this
        # message is lost with its worker, the sweeper re-nudges the rows.
        send_batch.apply_async((result.retry_ids,), countdown=result.retry_in)
    return result.counts


@jobs.register
@shared_task(ignore_result=True)
def sweep_deliveries() -> int:
    """Periodic safety net (celery beat, every NEWSDIGEST_DELIVERY_SWEEP_SECONDS), sooner after a broker that
    lost its queue: see deliver.sweep_and_publish."""
    return deliver.sweep_and_publish()


@jobs.register
@shared_task
def newsletter_tick(newsletter_id: int) -> int | None:
    """Beat's call at each scheduled slot (see worker/schedule.py); duplicates make no second digest."""
    digest = schedule.tick(newsletter_id)
    if digest is None:
        return None
    if digest.status == digest.Status.APPROVED:
        jobs.enqueue_after_commit(jobs.Job.START_SEND, digest.pk)
    return digest.pk


@jobs.register
@shared_task
def enforce_approval_deadlines() -> list[int]:
    """Every minute: settle overdue drafts and start the approved scheduled digests."""
    ready = schedule.enforce_approval_deadlines()
    for digest_id in ready:
        start_send.delay(digest_id)
    return ready


@jobs.register
@shared_task
def poll_feeds() -> int:
    """Periodic (celery beat, see feeds.ensure_poll_schedule): one poll_feed task per due feed."""
    due = feeds.due_source_ids()
    for source_id in due:
        poll_feed.delay(source_id)
    return len(due)


@jobs.register
@shared_task
def poll_feed(source_id: int) -> str:
    return str(feeds.poll_source_id(source_id))


@jobs.register
@shared_task(bind=True, autoretry_for=(OSError,), retry_backoff=5, max_retries=5)
def send_confirmation(self, subscriber_id: int, newsletter_id: int) -> None:
    """The double opt-in mail, off the request path (a sign-up answers alike for every address)."""
    from .models import Newsletter, Subscriber

    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    newsletter = Newsletter.objects.filter(pk=newsletter_id).first()
    if subscriber is None or newsletter is None or subscriber.status in subscribers.SUPPRESSED:
        return
    subscribers.send_confirmation(subscriber, newsletter)


@jobs.register
@shared_task
def flush_clicks() -> int:
    """Periodic (celery beat, every NEWSDIGEST_CLICK_FLUSH_SECONDS): buffered click hits into the counts."""
    return clicks.flush().read
