"""Schedule stage: turn summarized stories into a draft digest, and approve it."""

import logging

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .models import Article, Digest, DigestItem, Newsletter, transition

log = logging.getLogger("newsdigest.schedule")


class NothingToSend(Exception):
    """No summarized story is waiting for this newsletter; no empty digest is made."""


def candidate_articles(newsletter: Newsletter) -> list[Article]:
    """Summarized articles not yet in a live digest of this newsletter, one per story cluster.

    Of a cluster's versions the longest text wins: it is the most complete account.
    """
    used = DigestItem.objects.filter(
        article=OuterRef("pk"), digest__newsletter=newsletter,
    ).exclude(digest__status=Digest.Status.CANCELLED)
    used_story = DigestItem.objects.filter(
        article__story=OuterRef("story"), digest__newsletter=newsletter,
    ).exclude(digest__status=Digest.Status.CANCELLED)
    articles = (
        Article.objects.filter(status=Article.Status.SUMMARIZED)
        .filter(source__newsletter__in=[newsletter, None])
        .exclude(Exists(used))
        .exclude(Exists(used_story))
        .select_related("source")
    )
    best: dict[object, Article] = {}
    for article in articles:
        key = article.story_id or f"a{article.pk}"
        if key not in best or len(article.text) > len(best[key].text):
            best[key] = article
    ranked = sorted(best.values(), key=lambda a: (a.published_at or a.created_at), reverse=True)
    return ranked[: newsletter.max_stories]


def build_digest(newsletter: Newsletter) -> Digest:
    articles = candidate_articles(newsletter)
    pairs = [(a, a.current_summary()) for a in articles]
    pairs = [(a, s) for a, s in pairs if s is not None]
    if not pairs:
        raise NothingToSend(f"no new summarized stories for {newsletter.slug}; no digest made")
    lead = pairs[0][1].headline or pairs[0][0].title
    more = f" (+{len(pairs) - 1} more)" if len(pairs) > 1 else ""
    with transaction.atomic():
        digest = Digest.objects.create(
            newsletter=newsletter,
            subject=f"{newsletter.name}: {lead}{more}"[:300],
            period_start=newsletter.digests.filter(status=Digest.Status.SENT)
            .order_by("-period_end").values_list("period_end", flat=True).first(),
            period_end=timezone.now(),
        )
        DigestItem.objects.bulk_create(
            DigestItem(digest=digest, article=a, summary=s, position=i) for i, (a, s) in enumerate(pairs)
        )
    log.info("built digest %s with %d stories", digest.pk, len(pairs))
    return digest


def approve(digest_id: int) -> bool:
    return bool(transition(Digest.objects.filter(pk=digest_id), from_status=Digest.Status.DRAFT,
                           to_status=Digest.Status.APPROVED, approved_at=timezone.now()))
