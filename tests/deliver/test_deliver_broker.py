"""Broker down while sending: no digest left `sending` with nothing behind it, nothing waits out a window."""

import pytest

from tests.helpers.factories import approved_digest
from tests.helpers.processes import free_port, newsdigest, subprocess_env
from worker import deliver, render
from worker.models import Delivery, Digest


def _dead_broker_env() -> dict[str, str]:
    return subprocess_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_send_with_the_broker_down_leaves_the_digest_approved():
    digest = approved_digest(3)
    render.ensure_rendered(digest)
    result = newsdigest("send", str(digest.pk), "--yes", env=_dead_broker_env(), check=False)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "REDIS_URL" in result.stderr
    digest.refresh_from_db()
    assert digest.status == Digest.Status.APPROVED and digest.send_started_at is None
    assert not Delivery.objects.filter(digest=digest).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_rows_the_sweeper_could_not_publish_are_published_by_its_next_pass():
    digest = approved_digest(3)
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    assert deliver.fan_out(digest.pk)  # rows created and marked as nudged; their messages never left
    Delivery.objects.filter(digest=digest).update(lease_until=None)  # as if the nudge window had passed
    result = newsdigest("sweep", env=_dead_broker_env(), check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert not Delivery.objects.filter(digest=digest, lease_until__isnull=False).exists()
    assert deliver.nudge(digest.pk) == [list(Delivery.objects.filter(digest=digest).order_by("pk")
                                             .values_list("pk", flat=True))]
