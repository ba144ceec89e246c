"""Fan-out, nudge and sweep at scale: the number of statements does not grow with the list."""

from datetime import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.models import Delivery, Subscriber


def statements(action) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return len(captured)


def sending(n: int):
    digest = approved_digest(n)
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    return digest


@pytest.mark.django_db
def test_fan_out_statements_do_not_grow_with_the_list(settings):
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 10_000  # one batch either way: only creation is compared
    small, large = sending(20), sending(1500)
    assert statements(lambda: deliver.fan_out(small.pk)) == statements(lambda: deliver.fan_out(large.pk))
    assert Delivery.objects.filter(digest=large).count() == 1500


@pytest.mark.django_db
def test_fan_out_holds_subscribers_with_a_send_time_and_copies_the_rest(settings):
    digest = sending(6)
    Subscriber.objects.filter(email__startswith="user0.").update(send_time=time(23, 59), timezone="Pacific/Kiritimati")
    deliver.fan_out(digest.pk)
    rows = Delivery.objects.filter(digest=digest)
    assert rows.count() == 6
    assert rows.filter(subscriber__send_time__isnull=True, not_before__isnull=True).count() == 5


@pytest.mark.django_db
def test_nudge_marks_and_lists_rows_in_a_fixed_number_of_statements(settings):
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 7
    digest = sending(300)
    deliver.fan_out(digest.pk)
    Delivery.objects.update(lease_until=None)
    count = statements(lambda: deliver.nudge(digest.pk))
    assert count <= 3
    assert not Delivery.objects.filter(lease_until__isnull=True).exists()


@pytest.mark.django_db
def test_a_sweep_re_nudging_every_row_takes_a_fixed_number_of_statements(settings):
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 10
    settings.NEWSDIGEST_DELIVERY_NUDGE_SECONDS = 0
    digest = sending(800)
    deliver.fan_out(digest.pk)
    count = statements(deliver.sweep)
    assert count <= 12
    assert sum(map(len, deliver.sweep())) == 800
