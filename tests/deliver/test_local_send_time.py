"""Per-subscriber local send time: deliveries are held until each reader's own clock says so."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.deliver import fanout
from worker.models import Delivery, Digest, Subscriber

BERLIN = ZoneInfo("Europe/Berlin")


def test_it_releases_at_the_subscribers_local_time_later_today():
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 05:00 in New York
    release = fanout.subscriber_release(time(7, 0), "America/New_York", BERLIN, now)
    assert release == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_it_sends_at_once_when_the_local_time_has_passed_today():
    now = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # 08:00 in New York
    assert fanout.subscriber_release(time(7, 0), "America/New_York", BERLIN, now) is None


def test_it_sends_at_once_without_a_chosen_time():
    assert fanout.subscriber_release(None, "America/New_York", BERLIN, datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_a_time_in_the_spring_forward_gap_is_released_just_after_it():
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET; at 02:00 Berlin jumps to 03:00
    release = fanout.subscriber_release(time(2, 30), "Europe/Berlin", BERLIN, now)
    assert release == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST, the first real minute after


def test_an_unknown_zone_falls_back_to_the_newsletters():
    now = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # 06:00 in Berlin
    release = fanout.subscriber_release(time(7, 0), "Mars/Olympus_Mons", BERLIN, now)
    assert release == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_held_delivery_goes_out_when_its_local_time_comes(smtp):
    digest = approved_digest(2)
    render.ensure_rendered(digest)
    early_riser, night_owl = Subscriber.objects.filter(subscriptions__newsletter=digest.newsletter).order_by("pk")
    Subscriber.objects.filter(pk=night_owl.pk).update(send_time=time(7, 0), timezone="America/New_York")

    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), tick=False):
        deliver.begin_send(digest.pk)
        for batch in deliver.fan_out(digest.pk):
            deliver.send_batch(batch)
    assert [m["To"].addresses[0].addr_spec for m in smtp.messages] == [early_riser.email]
    held = Delivery.objects.get(digest=digest, subscriber=night_owl)
    assert held.status == Delivery.Status.QUEUED
    assert held.not_before == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 11, 26, 12, 1, tzinfo=UTC), tick=False):
        for batch in deliver.sweep():
            deliver.send_batch(batch)
    assert [m["To"].addresses[0].addr_spec for m in smtp.messages] == [early_riser.email, night_owl.email]
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT
