"""The sweeper's re-nudge is bounded (NEWSDIGEST_DELIVERY_NUDGE_LIMIT rows a sweep): a larger backlog
drains over successive sweeps, each row nudged once per lapse; held rows wait on their own lease."""

from datetime import UTC, datetime, time

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers.deliveries import fanned_out_digest, lapse
from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.models import Delivery, Subscriber


def swept() -> list[int]:
    return [pk for batch in deliver.sweep() for pk in batch]


@pytest.fixture
def limited(settings):
    settings.NEWSDIGEST_DELIVERY_NUDGE_LIMIT = 7
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 3


@pytest.mark.django_db
def test_it_drains_a_backlog_larger_than_the_limit_over_successive_sweeps_nudging_each_row_once(limited):
    digest = fanned_out_digest(20)
    lapse(Delivery.objects.filter(digest=digest))
    sweeps = [swept() for _ in range(4)]
    assert list(map(len, sweeps)) == [7, 7, 6, 0]
    nudged = [pk for rows in sweeps for pk in rows]
    assert sorted(nudged) == sorted(Delivery.objects.filter(digest=digest).values_list("pk", flat=True))


@pytest.mark.django_db
def test_it_does_not_re_nudge_rows_whose_nudge_is_recent(limited):
    digest = fanned_out_digest(5)
    rows = Delivery.objects.filter(digest=digest).order_by("pk")
    lapse(rows.filter(pk__in=list(rows.values_list("pk", flat=True)[:2])))
    assert len(swept()) == 2
    assert swept() == []


@pytest.mark.django_db
def test_it_re_nudges_the_oldest_lapses_first(limited):
    digest = fanned_out_digest(10)
    pks = list(Delivery.objects.filter(digest=digest).order_by("pk").values_list("pk", flat=True))
    for age, pk in enumerate(pks):  # the last row's nudge lapsed first
        lapse(Delivery.objects.filter(pk=pk), seconds_ago=60 + age)
    assert sorted(swept()) == sorted(pks[-7:])


@pytest.mark.django_db
def test_it_nudges_rows_that_never_had_a_message_before_lapsed_ones(limited):
    digest = fanned_out_digest(10)
    pks = list(Delivery.objects.filter(digest=digest).order_by("pk").values_list("pk", flat=True))
    lapse(Delivery.objects.filter(pk__in=pks[:8]))
    deliver.forget_nudge(pks[8:])  # their messages could not be published
    assert set(pks[8:]) <= set(swept())


@pytest.mark.django_db
def test_a_nudge_writes_the_lease_and_nothing_else(limited):
    digest = fanned_out_digest(10)
    lapse(Delivery.objects.filter(digest=digest))
    with CaptureQueriesContext(connection) as captured:
        deliver.nudge(limit=7)
    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    assignments = [sql.split(" SET ", 1)[1].split(" WHERE ", 1)[0] for sql in updates]
    assert assignments and all(a.startswith('"lease_until" = ') and "," not in a for a in assignments)


@pytest.mark.django_db
def test_a_held_row_is_leased_until_its_release_and_nudged_once_it_passes(limited):
    digest = approved_digest(1)
    render.ensure_rendered(digest)
    night_owl = Subscriber.objects.get(subscriptions__newsletter=digest.newsletter)
    Subscriber.objects.filter(pk=night_owl.pk).update(send_time=time(13, 0), timezone="UTC")
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), tick=False):
        deliver.begin_send(digest.pk)
        deliver.fan_out(digest.pk)
    held = Delivery.objects.get(digest=digest, subscriber=night_owl)
    assert held.lease_until == held.not_before == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    with time_machine.travel(datetime(2026, 11, 26, 12, 59, tzinfo=UTC), tick=False):
        assert swept() == []
    with time_machine.travel(datetime(2026, 11, 26, 13, 1, tzinfo=UTC), tick=False):
        assert swept() == [held.pk]


@pytest.mark.django_db
def test_a_resumed_digest_keeps_its_held_rows_until_their_release(limited):
    digest = approved_digest(3)
    render.ensure_rendered(digest)
    night_owl = Subscriber.objects.filter(subscriptions__newsletter=digest.newsletter).order_by("pk").first()
    Subscriber.objects.filter(pk=night_owl.pk).update(send_time=time(13, 0), timezone="UTC")
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), tick=False):
        deliver.begin_send(digest.pk)
        deliver.fan_out(digest.pk)
        deliver.pause(digest.pk)
        resumed = [pk for batch in deliver.resume(digest.pk) for pk in batch]
    held = Delivery.objects.get(digest=digest, subscriber=night_owl)
    assert held.pk not in resumed and len(resumed) == 2
    assert held.lease_until == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_lost_workers_row_at_the_attempt_cap_fails_flagged_as_a_possible_duplicate(limited, settings):
    digest = fanned_out_digest(2)
    in_smtp, untried = deliver.claim(list(Delivery.objects.filter(digest=digest).values_list("pk", flat=True)), "dead")
    Delivery.objects.filter(pk=in_smtp.pk).update(message_id="<in-flight@x>")
    Delivery.objects.filter(digest=digest).update(attempts=settings.NEWSDIGEST_DELIVERY_MAX_ATTEMPTS)
    lapse(Delivery.objects.filter(digest=digest))
    deliver.sweep()
    rows = {d.pk: d for d in Delivery.objects.filter(digest=digest)}
    assert {d.status for d in rows.values()} == {Delivery.Status.FAILED}
    assert (rows[in_smtp.pk].possible_duplicate, rows[untried.pk].possible_duplicate) == (True, False)
    assert rows[in_smtp.pk].last_error.endswith("worker lost")


@pytest.mark.django_db
def test_rows_of_a_lost_worker_are_published_by_the_sweep_that_re_queues_them_and_only_by_it(limited):
    digest = fanned_out_digest(4)
    held = [d.pk for d in deliver.claim(list(Delivery.objects.filter(digest=digest).values_list("pk", flat=True)),
                                        "dead")]
    lapse(Delivery.objects.filter(pk__in=held))  # the dead worker's leases
    assert sorted(swept()) == sorted(held)
    assert swept() == []
