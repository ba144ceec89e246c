"""Schedule stage: when each newsletter runs, turning summarized stories into a draft digest, approval.

A newsletter's cadence is stored as a django-celery-beat PeriodicTask (a CrontabSchedule in the
newsletter's own time zone) calling `worker.tasks.newsletter_tick`, so ops can see and edit it in
the admin. `sync_schedule` writes it; it is called explicitly wherever a newsletter's schedule
changes (the admin's save, `newsdigest newsletters create|schedule|sync`), not from a post_save
signal, so a save inside a migration, fixture or bulk update never touches the beat tables.

Every tick works on a *slot*: the scheduled time it stands for (the latest run time of the cadence
at or before now). The digest built for a slot carries it as `period_end`, so a duplicate beat
message or a retried tick finds that digest and makes no second one.
"""

import logging
import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.tzcrontab import TzAwareCrontab

from . import audit, interest, jobs
from .models import Article, Digest, DigestItem, Newsletter
from .summarize.shorten import shorten

log = logging.getLogger("newsdigest.schedule")

# How far back a cron cadence may look for its last run ("0 7 29 2 *" runs every four years).
MAX_LOOKBACK_DAYS = 4 * 366 + 1
# A story loses half its rank every FRESHNESS_HALF_LIFE_HOURS.
FRESHNESS_HALF_LIFE_HOURS = 24.0


class NothingToSend(Exception):
    """No summarized story is waiting for this newsletter; no empty digest is made."""


class ScheduleError(ValueError):
    """A newsletter's cadence cannot be turned into a schedule (bad cron line, unknown time zone)."""


# --- When ------------------------------------------------------------------------------------------

def newsletter_zone(newsletter: Newsletter) -> ZoneInfo:
    try:
        return ZoneInfo(newsletter.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{newsletter.slug}: unknown time zone {newsletter.timezone!r} "
                            f"(use an IANA name such as Europe/Berlin)") from None


def _send_time(newsletter: Newsletter) -> time:
    value = newsletter.send_time
    return time.fromisoformat(value) if isinstance(value, str) else value


def cron_fields(newsletter: Newsletter) -> dict[str, str] | None:
    """The cadence as crontab fields in the newsletter's time zone; None for a manual newsletter."""
    cadence = newsletter.cadence
    if cadence == Newsletter.Cadence.MANUAL:
        return None
    if cadence == Newsletter.Cadence.CRON:
        parts = newsletter.cron.split()
        if len(parts) != 5:
            raise ScheduleError(f"{newsletter.slug}: cron needs 5 fields (minute hour day month weekday), "
                                f"got {newsletter.cron!r}")
        fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True))
    else:
        at = _send_time(newsletter)
        if cadence == Newsletter.Cadence.WEEKLY and not 0 <= newsletter.weekday <= 6:
            raise ScheduleError(f"{newsletter.slug}: weekday must be 0 (Monday) to 6 (Sunday)")
        # crontab counts weekdays from Sunday = 0; the model from Monday = 0.
        day_of_week = {Newsletter.Cadence.DAILY: "*", Newsletter.Cadence.WEEKDAYS: "1-5",
                       Newsletter.Cadence.WEEKLY: str((newsletter.weekday + 1) % 7)}[cadence]
        fields = {"minute": str(at.minute), "hour": str(at.hour), "day_of_month": "*", "month_of_year": "*",
                  "day_of_week": day_of_week}
    crontab(newsletter, fields)  # validates the fields
    return fields


def crontab(newsletter: Newsletter, fields: dict[str, str] | None = None) -> TzAwareCrontab:
    """The celery schedule beat evaluates for this newsletter."""
    fields = fields if fields is not None else cron_fields(newsletter)
    if fields is None:
        raise ScheduleError(f"{newsletter.slug} is sent manually; it has no schedule")
    try:
        return TzAwareCrontab(tz=newsletter_zone(newsletter), **fields)
    except ValueError as exc:
        raise ScheduleError(f"{newsletter.slug}: invalid cron {newsletter.cron!r}: {exc}") from None


def _runs_on(day: date, cron: TzAwareCrontab, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants the cadence fires on one local day.

    A local time that does not exist (skipped by a spring DST change) fires at the same
    wall-clock distance after the change; an ambiguous one (autumn) fires at its first occurrence.
    """
    if (day.month not in cron.month_of_year or day.day not in cron.day_of_month
            or (day.weekday() + 1) % 7 not in cron.day_of_week):
        return []
    runs = {datetime.combine(day, time(h, m), tzinfo=zone).astimezone(ZoneInfo("UTC"))
            for h in cron.hour for m in cron.minute}
    return sorted(runs)


def next_runs(newsletter: Newsletter, after: datetime, count: int) -> list[datetime]:
    """The next `count` run times strictly after `after`, in UTC."""
    cron, zone = crontab(newsletter), newsletter_zone(newsletter)
    day, found = after.astimezone(zone).date() - timedelta(days=1), []
    for _ in range(MAX_LOOKBACK_DAYS):
        found += [run for run in _runs_on(day, cron, zone) if run > after]
        if len(found) >= count:
            break
        day += timedelta(days=1)
    return found[:count]


def current_slot(newsletter: Newsletter, now: datetime) -> datetime | None:
    """The latest run time at or before `now`: the one a tick arriving now stands for."""
    cron, zone = crontab(newsletter), newsletter_zone(newsletter)
    day = now.astimezone(zone).date() + timedelta(days=1)
    for _ in range(MAX_LOOKBACK_DAYS):
        past = [run for run in _runs_on(day, cron, zone) if run <= now]
        if past:
            return past[-1]
        day -= timedelta(days=1)
    return None


def task_name(newsletter: Newsletter) -> str:
    return f"newsletter {newsletter.slug} (#{newsletter.pk})"


def sync_schedule(newsletter: Newsletter) -> PeriodicTask | None:
    """Make beat's PeriodicTask match the newsletter's cadence; a manual newsletter gets none."""
    fields = cron_fields(newsletter)
    task = newsletter.periodic_task
    if fields is None:
        if task is not None:
            Newsletter.objects.filter(pk=newsletter.pk).update(periodic_task=None)
            task.delete()
            newsletter.periodic_task = None
        return None
    with transaction.atomic():
        schedule, _ = CrontabSchedule.objects.get_or_create(timezone=newsletter.timezone, **fields)
        if task is None:
            task = PeriodicTask(task=jobs.Job.NEWSLETTER_TICK.value)
        task.name = task_name(newsletter)
        task.crontab, task.interval, task.solar, task.clocked = schedule, None, None, None
        task.args = f"[{newsletter.pk}]"
        task.enabled = True
        task.save()
        Newsletter.objects.filter(pk=newsletter.pk).update(periodic_task=task)
        newsletter.periodic_task = task
    return task


# --- What ------------------------------------------------------------------------------------------

def rank(article: Article, cluster_size: int, now: datetime) -> float:
    """Fresher, more widely reported stories from heavier sources first.

    An undated article counts as one half-life old: when it was ingested says nothing about when it
    happened, so it neither beats today's dated news nor sinks below last week's."""
    if article.published_at is None:
        age_hours = FRESHNESS_HALF_LIFE_HOURS
    else:
        age_hours = max(0.0, (now - article.published_at).total_seconds() / 3600)
    weight = article.source.weight if article.source else 1.0
    return weight * (1 + math.log(max(cluster_size, 1))) * 0.5 ** (age_hours / FRESHNESS_HALF_LIFE_HOURS)


def candidate_articles(newsletter: Newsletter) -> list[Article]:
    """Summarized articles not yet in a live digest of this newsletter, one per story cluster, ranked.

    Of a cluster's versions the longest text wins: it is the most complete account. Stories of a
    cancelled digest were never sent, so they may come back.
    """
    used = DigestItem.objects.filter(
        article=OuterRef("pk"), digest__newsletter=newsletter,
    ).exclude(digest__status=Digest.Status.CANCELLED)
    used_story = DigestItem.objects.filter(
        article__story=OuterRef("story"), digest__newsletter=newsletter,
    ).exclude(digest__status=Digest.Status.CANCELLED)
    articles = (
        Article.objects.filter(status=Article.Status.SUMMARIZED)
        # A source without a newsletter (or no source: a file dropped in by hand) feeds every newsletter.
        .filter(Q(source__newsletter=newsletter) | Q(source__newsletter__isnull=True))
        .exclude(Exists(used))
        .exclude(Exists(used_story))
        .annotate(cluster_size=Count("story__articles"))
        .select_related("source")
    )
    best: dict[object, Article] = {}
    for article in articles:
        key = article.story_id or f"a{article.pk}"
        if key not in best or len(article.text) > len(best[key].text):
            best[key] = article
    now = timezone.now()
    # Today's rank times what readers' past click-through says of the source and topics (worker/interest.py);
    # equal scores (undated articles of one source) go to the fuller account, not the earlier ingested.
    explained = interest.explain(newsletter, list(best.values()), lambda a: rank(a, a.cluster_size, now), now)
    ranked = sorted(best.values(), key=lambda a: (explained[a.pk]["score"], len(a.text)), reverse=True)
    for article in ranked:
        article.rank_detail = explained[article.pk]
    return ranked[: newsletter.max_stories]


def build_digest(newsletter: Newsletter, *, period_end: datetime | None = None) -> Digest:
    articles = candidate_articles(newsletter)
    pairs = [(a, a.current_summary()) for a in articles]
    pairs = [(a, s) for a, s in pairs if s is not None]
    if not pairs:
        raise NothingToSend(f"no new summarized stories for {newsletter.slug}; no digest made")
    more = f" and {len(pairs) - 1} more" if len(pairs) > 1 else ""
    # An editor's subject line: the lead story, cut at a phrase boundary so the count stays visible.
    # "..." rather than "…": Django folds a long non-ASCII subject into encoded words behind an empty
    # first line, which some clients show with a leading space.
    lead = shorten(pairs[0][1].headline or pairs[0][0].title, max(30, 78 - len(newsletter.name) - len(more)), "...")
    with transaction.atomic():
        digest = Digest.objects.create(
            newsletter=newsletter,
            subject=f"{newsletter.name}: {lead}{more}"[:300],
            period_start=newsletter.digests.filter(status=Digest.Status.SENT)
            .order_by("-period_end").values_list("period_end", flat=True).first(),
            period_end=period_end or timezone.now(),
        )
        DigestItem.objects.bulk_create(
            DigestItem(digest=digest, article=a, summary=s, position=i) for i, (a, s) in enumerate(pairs)
        )
        interest.keep_explanations(digest, [a for a, _ in pairs])
    log.info("built digest %s with %d stories", digest.pk, len(pairs))
    return digest


def approve(digest_id: int, *, user: User | None = None, action: str = "approved") -> bool:
    moved = Digest.transition(digest_id, from_status=Digest.Status.DRAFT,
                              to_status=Digest.Status.APPROVED, approved_at=timezone.now(),
                              approved_by=user if user is not None and user.is_authenticated else None)
    if moved:
        audit.record(digest_id, user, action)
    return bool(moved)


# --- Ticks and deadlines ---------------------------------------------------------------------------

def tick(newsletter_id: int) -> Digest | None:
    """Build the draft for the current slot, once; auto-approve it or give it an approval deadline.

    Returns the new digest, or None when this slot already has one or there is nothing to send.
    The newsletter row is locked (PostgreSQL; SQLite's IMMEDIATE transactions serialise writers)
    so two ticks for one slot cannot both pass the check.
    """
    now = timezone.now()
    with transaction.atomic():
        newsletter = Newsletter.objects.select_for_update().get(pk=newsletter_id)
        slot = now if newsletter.cadence == Newsletter.Cadence.MANUAL else current_slot(newsletter, now) or now
        done = newsletter.digests.filter(period_end=slot).values_list("pk", flat=True).first()
        if done is not None:
            log.info("%s: slot %s already has digest %s; tick ignored", newsletter.slug, slot.isoformat(), done)
            return None
        try:
            digest = build_digest(newsletter, period_end=slot)
        except NothingToSend as exc:
            log.info("%s: slot %s skipped: %s", newsletter.slug, slot.isoformat(), exc)
            return None
        auto = newsletter.approval == Newsletter.Approval.AUTO
        deadline = now if auto else now + timedelta(minutes=newsletter.approval_deadline_minutes)
        Digest.objects.filter(pk=digest.pk).update(approval_deadline=deadline)
        audit.record(digest.pk, None, "built", slot=slot.isoformat(), stories=digest.items.count())
        if auto:
            approve(digest.pk, action="approved automatically")
    digest.refresh_from_db()
    return digest


def enforce_approval_deadlines() -> list[int]:
    """Settle drafts whose approval deadline passed (send or skip, per newsletter), and return the
    scheduled digests that are approved but not started yet, for the caller to send."""
    overdue = Digest.objects.filter(status=Digest.Status.DRAFT, approval_deadline__lte=timezone.now())
    for digest in overdue.select_related("newsletter"):
        if digest.newsletter.send_if_unapproved:
            approve(digest.pk, action="approved at deadline")
        elif Digest.transition(digest.pk, from_status=Digest.Status.DRAFT, to_status=Digest.Status.CANCELLED):
            audit.record(digest.pk, None, "skipped", reason="approval deadline passed without approval")
            log.info("digest %s skipped: nobody approved it by %s", digest.pk, digest.approval_deadline)
    return list(Digest.objects.filter(status=Digest.Status.APPROVED, approval_deadline__isnull=False,
                                      send_started_at__isnull=True).order_by("pk").values_list("pk", flat=True))
