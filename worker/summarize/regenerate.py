"""The worker's half of the desk's "Regenerate summary": a forced summary put on the story."""

from django.db import transaction
from django.utils import timezone

from .. import audit
from ..models import Digest, DigestItem, Regeneration
from . import summarize_article
from .errors import EngineError


def run_regeneration(regeneration_id: int) -> Regeneration:
    """Summarize again (force), then put the fresh summary on the story (dropping the editor's
    overrides of the old one), if the digest is still a draft."""
    job = Regeneration.objects.select_related("item").get(pk=regeneration_id)
    if not Regeneration.transition(job.pk, from_status=Regeneration.Status.QUEUED,
                                   to_status=Regeneration.Status.RUNNING):
        return job  # a redelivered task: another worker has it
    try:
        fresh = summarize_article(job.item.article_id, force=True)
    except EngineError as exc:
        _fail(job, str(exc))
    else:
        with transaction.atomic():
            digest = Digest.objects.select_for_update().get(pk=job.item.digest_id)
            if digest.status != Digest.Status.DRAFT:
                _fail(job, f"digest {digest.pk} is {digest.status}; only a draft can be edited")
            else:
                DigestItem.objects.filter(pk=job.item_id).update(
                    summary=fresh, headline_override="", summary_override="", why_override="",
                    actors_override=None)
                Digest.objects.filter(pk=digest.pk).update(rendered_at=None)
                audit.record(digest.pk, job.requested_by, "regenerated summary", item=job.item_id,
                             summary=fresh.pk, engine=fresh.engine)
                Regeneration.transition(job.pk, from_status=Regeneration.Status.RUNNING,
                                        to_status=Regeneration.Status.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    return job


def _fail(job: Regeneration, error: str) -> None:
    Regeneration.transition(job.pk, from_status=Regeneration.Status.RUNNING,
                            to_status=Regeneration.Status.FAILED, error=error, finished_at=timezone.now())
