"""Digests mid-send for the sweeper's tests: fanned out, and their rows' messages lost."""

from datetime import timedelta

from django.utils import timezone

from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.models import Digest


def fanned_out_digest(n: int) -> Digest:
    """A sending digest of `n` subscribers whose rows are all nudged: a message in flight for each."""
    digest = approved_digest(n)
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    deliver.fan_out(digest.pk)  # rows marked nudged; their batches are returned, not published
    return digest


def lapse(rows, seconds_ago: int = 60) -> None:
    """As if the rows' messages were lost `seconds_ago` seconds after their nudge window ended."""
    rows.update(lease_until=timezone.now() - timedelta(seconds=seconds_ago))
