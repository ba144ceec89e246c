"""Schedules: run times across DST changes, beat's real crontab under a controlled clock, idempotent ticks,
ranking, approval deadlines."""

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.helpers.factories import summarized_article
from worker import schedule, tasks
from worker.models import (
    AuditEntry,
    Delivery,
    Digest,
    Newsletter,
    Source,
    Story,
    Subscriber,
    Subscription,
)

pytestmark = pytest.mark.django_db


make_article = summarized_article


def make_newsletter(**fields) -> Newsletter:
    defaults = {"name": "Morning", "slug": "morning", "timezone": "Europe/Berlin", "send_time": "07:00",
                "cadence": Newsletter.Cadence.DAILY}
    return Newsletter.objects.create(**(defaults | fields))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


DST_CASES = {
    # zone, a local day two days before the change, UTC hour of 07:00 local on four days from then
    "berlin-spring": ("Europe/Berlin", utc(2026, 3, 27), [6, 6, 5, 5]),
    "berlin-autumn": ("Europe/Berlin", utc(2026, 10, 23), [5, 5, 6, 6]),
    "new-york-spring": ("America/New_York", utc(2026, 3, 6), [12, 12, 11, 11]),
    "new-york-autumn": ("America/New_York", utc(2026, 10, 30), [11, 11, 12, 12]),
}


@pytest.mark.parametrize("case", DST_CASES)
def test_next_runs_keep_the_local_send_time_across_a_dst_change(case):
    zone, start, hours = DST_CASES[case]
    newsletter = make_newsletter(timezone=zone)
    runs = schedule.next_runs(newsletter, start, 4)
    assert [r.hour for r in runs] == hours
    assert [r.date() - start.date() for r in runs] == [timedelta(days=d) for d in range(4)]
    assert {r.astimezone(ZoneInfo(zone)).strftime("%H:%M") for r in runs} == {"07:00"}


def test_a_send_time_inside_the_spring_gap_fires_once_that_day():
    newsletter = make_newsletter(send_time="02:30")
    runs = schedule.next_runs(newsletter, utc(2026, 3, 28, 12), 2)
    # 02:30 does not exist on 29 March in Berlin: it fires at 03:30 CEST (01:30 UTC), once.
    assert runs == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]


def test_an_ambiguous_autumn_send_time_fires_only_at_its_first_occurrence():
    newsletter = make_newsletter(send_time="02:30")
    runs = schedule.next_runs(newsletter, utc(2026, 10, 24, 12), 2)
    assert runs == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_weekly_and_weekday_cadences_pick_the_right_days():
    weekly = make_newsletter(cadence=Newsletter.Cadence.WEEKLY, weekday=2, timezone="UTC")  # Wednesday
    assert {r.strftime("%A") for r in schedule.next_runs(weekly, utc(2026, 6, 1), 3)} == {"Wednesday"}
    weekdays = make_newsletter(slug="wd", cadence=Newsletter.Cadence.WEEKDAYS, timezone="UTC")
    days = [r.strftime("%a") for r in schedule.next_runs(weekdays, utc(2026, 6, 5, 12), 3)]  # a Friday noon
    assert days == ["Mon", "Tue", "Wed"]


def test_sync_schedule_stores_a_crontab_in_the_newsletter_time_zone():
    newsletter = make_newsletter(timezone="America/New_York", send_time="06:45")
    task = schedule.sync_schedule(newsletter)
    newsletter.refresh_from_db()
    assert newsletter.periodic_task == task
    assert task.task == "worker.tasks.newsletter_tick" and task.args == f"[{newsletter.pk}]"
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("45", "6", "America/New_York")

    newsletter.cadence, newsletter.weekday = Newsletter.Cadence.WEEKLY, 4
    assert schedule.sync_schedule(newsletter).pk == task.pk
    task.refresh_from_db()
    assert task.crontab.day_of_week == "5"  # Friday in crontab's Sunday-first numbering


def test_a_manual_newsletter_loses_its_periodic_task():
    newsletter = make_newsletter()
    task = schedule.sync_schedule(newsletter)
    newsletter.cadence = Newsletter.Cadence.MANUAL
    assert schedule.sync_schedule(newsletter) is None
    newsletter.refresh_from_db()
    assert newsletter.periodic_task is None
    assert not type(task).objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize("fields, message", [
    ({"cadence": "cron", "cron": "0 7 * *"}, "cron needs 5 fields"),
    ({"cadence": "cron", "cron": "0 25 * * *"}, "invalid cron"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
])
def test_a_bad_schedule_is_refused_with_the_reason(fields, message):
    with pytest.raises(schedule.ScheduleError, match=message):
        schedule.sync_schedule(make_newsletter(**fields))


@pytest.mark.parametrize("case", DST_CASES)
def test_beat_makes_exactly_one_digest_per_local_day_across_a_dst_change(case):
    """Beat's own crontab (as stored by sync_schedule) is polled every 10 minutes of a frozen clock."""
    zone, start, _ = DST_CASES[case]
    newsletter = make_newsletter(timezone=zone, max_stories=1, approval=Newsletter.Approval.EDITOR)
    for i in range(6):
        make_article(None, f"Story {i}", published=start - timedelta(hours=i))
    beat_schedule = schedule.sync_schedule(newsletter).schedule
    last_run, now, fired = start, start, []
    while now < start + timedelta(days=4):
        with time_machine.travel(now, tick=False):
            if beat_schedule.is_due(last_run).is_due:
                last_run = now
                fired.append(now)
                schedule.tick(newsletter.pk)
        now += timedelta(minutes=10)
    slots = list(newsletter.digests.order_by("period_end").values_list("period_end", flat=True))
    local = [s.astimezone(ZoneInfo(zone)) for s in slots]
    assert len({d.date() for d in local}) == len(local) == 4
    assert {d.strftime("%H:%M") for d in local} == {"07:00"}
    assert len(fired) == 4
    assert all(timedelta(0) <= f - s < timedelta(minutes=10) for f, s in zip(fired, slots, strict=True))


def test_two_ticks_for_one_slot_make_one_digest():
    newsletter = make_newsletter()
    make_article(None, "Harbour bridge opens")
    make_article(None, "Port strike ends")
    with time_machine.travel(datetime(2026, 5, 4, 7, 0, 5, tzinfo=ZoneInfo("Europe/Berlin")), tick=False):
        first = schedule.tick(newsletter.pk)
        assert schedule.tick(newsletter.pk) is None
    with time_machine.travel(datetime(2026, 5, 4, 9, 30, tzinfo=ZoneInfo("Europe/Berlin")), tick=False):
        assert schedule.tick(newsletter.pk) is None  # a retry hours later still belongs to the 07:00 slot
    assert list(newsletter.digests.values_list("pk", flat=True)) == [first.pk]
    assert first.period_end == datetime(2026, 5, 4, 5, 0, tzinfo=UTC)


def test_a_tick_with_nothing_new_makes_no_digest_and_says_so(caplog):
    newsletter = make_newsletter()
    with caplog.at_level(logging.INFO, logger="newsdigest.schedule"):
        assert schedule.tick(newsletter.pk) is None
    assert not Digest.objects.exists()
    assert "skipped: no new summarized stories for morning" in caplog.text


def test_a_story_is_never_in_two_digests():
    newsletter = make_newsletter()
    story = Story.objects.create()
    make_article(None, "Vaccine trial succeeds", story=story)
    with time_machine.travel(utc(2026, 5, 4, 6), tick=False):
        first = schedule.tick(newsletter.pk)
    make_article(None, "Vaccine trial: wire copy", story=story)
    make_article(None, "Chess prodigy wins")
    with time_machine.travel(utc(2026, 5, 5, 6), tick=False):
        second = schedule.tick(newsletter.pk)
    assert [i.article.title for i in first.items.all()] == ["Vaccine trial succeeds"]
    assert [i.article.title for i in second.items.all()] == ["Chess prodigy wins"]


def test_stories_are_ranked_by_freshness_cluster_size_and_source_weight():
    newsletter = make_newsletter()
    now = datetime.now(UTC)
    heavy = Source.objects.create(name="Heavy", weight=3.0)
    light = Source.objects.create(name="Light", weight=1.0)
    big = Story.objects.create()
    make_article(light, "Old and small", published=now - timedelta(days=2))
    make_article(light, "Fresh and small", published=now)
    make_article(light, "Fresh and reported thrice", published=now, story=big, text="long " * 50)
    for i in range(2):
        make_article(light, f"Copy {i}", published=now, story=big)
    make_article(heavy, "Fresh from a heavy source", published=now)
    titles = [a.title for a in schedule.candidate_articles(newsletter)]
    assert titles == ["Fresh from a heavy source", "Fresh and reported thrice", "Fresh and small", "Old and small"]


def test_an_auto_newsletter_sends_its_digest_at_the_tick(django_capture_on_commit_callbacks, outbox):
    newsletter = make_newsletter(approval=Newsletter.Approval.AUTO)
    reader = Subscriber.objects.create(email="reader@example.com", status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=reader, newsletter=newsletter, status=Subscription.Status.ACTIVE)
    make_article(None, "Grid storage record")
    with django_capture_on_commit_callbacks(execute=True):
        digest_id = tasks.newsletter_tick(newsletter.pk)
    digest = Digest.objects.get(pk=digest_id)
    assert digest.status == Digest.Status.SENT
    assert list(Delivery.objects.values_list("status", flat=True)) == ["sent"]
    assert list(digest.audit.order_by("pk").values_list("action", flat=True)) == ["built", "approved automatically"]


def _overdue_draft(send_if_unapproved: bool) -> Digest:
    newsletter = make_newsletter(approval_deadline_minutes=30, send_if_unapproved=send_if_unapproved)
    make_article(None, "Bridge opens")
    with time_machine.travel(utc(2026, 5, 4, 5, 1), tick=False):
        digest = schedule.tick(newsletter.pk)
    assert digest.status == Digest.Status.DRAFT
    assert digest.approval_deadline == utc(2026, 5, 4, 5, 31)
    return digest


def test_a_draft_waits_for_its_editor_until_the_deadline():
    digest = _overdue_draft(send_if_unapproved=False)
    with time_machine.travel(utc(2026, 5, 4, 5, 30), tick=False):
        assert schedule.enforce_approval_deadlines() == []
    digest.refresh_from_db()
    assert digest.status == Digest.Status.DRAFT


def test_an_unapproved_draft_is_skipped_at_the_deadline():
    digest = _overdue_draft(send_if_unapproved=False)
    with time_machine.travel(utc(2026, 5, 4, 5, 32), tick=False):
        assert schedule.enforce_approval_deadlines() == []
    digest.refresh_from_db()
    assert digest.status == Digest.Status.CANCELLED
    entry = AuditEntry.objects.get(digest=digest, action="skipped")
    assert entry.user is None and "deadline" in entry.detail["reason"]


def test_an_unapproved_draft_is_sent_at_the_deadline_when_configured(outbox):
    digest = _overdue_draft(send_if_unapproved=True)
    with time_machine.travel(utc(2026, 5, 4, 5, 32), tick=False):
        assert tasks.enforce_approval_deadlines() == [digest.pk]
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT
    assert digest.audit.filter(action="approved at deadline").exists()


def test_an_editor_approved_scheduled_digest_is_released_by_the_periodic_task():
    digest = _overdue_draft(send_if_unapproved=False)
    assert schedule.approve(digest.pk)
    with time_machine.travel(utc(2026, 5, 4, 5, 10), tick=False):
        assert schedule.enforce_approval_deadlines() == [digest.pk]


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_ticks_make_one_digest():
    """Beat firing twice (or a redelivered message) at once: the newsletter row lock lets one build."""
    import threading

    from django.db import connection

    newsletter = make_newsletter()
    for i in range(3):
        make_article(None, f"Story {i}")
    barrier, results = threading.Barrier(4), []

    def duplicate_tick():
        try:
            barrier.wait()
            results.append(schedule.tick(newsletter.pk))
        finally:
            connection.close()

    with time_machine.travel(utc(2026, 5, 4, 5, 0, 30), tick=False):
        threads = [threading.Thread(target=duplicate_tick) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(results) == 4 and sum(r is not None for r in results) == 1
    assert newsletter.digests.count() == 1
