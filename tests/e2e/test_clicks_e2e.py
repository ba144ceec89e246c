"""Clicks on a really sent digest: a real Celery worker sends and flushes, a private Redis buffers."""

import re
import time
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import pytest
from kombu import Connection

from tests.helpers.factories import make_digest
from tests.helpers.processes import celery_worker, newsdigest, subprocess_env, wait_for
from worker import clicks
from worker.celery_app import app
from worker.models import ClickCount, Digest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True),
              # send_task goes to the worker on purpose; the test process's own settings are eager.
              pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")]

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/17.5 Safari/605.1.15")


def test_clicks_on_a_sent_digest_are_counted_and_scanners_left_out(tmp_path, redis_url, settings, client):
    outbox = tmp_path / "outbox"
    env = subprocess_env(
        REDIS_URL=redis_url, NEWSDIGEST_OUTBOX_DIR=str(outbox), NEWSDIGEST_VAR_DIR=str(tmp_path / "var"),
        # The redirect runs here, in the test process: the worker must sign with the same key.
        SECRET_KEY=settings.SECRET_KEY, NEWSDIGEST_CLICK_SCANNER_SECONDS="0", NEWSDIGEST_CLICK_BURST_SECONDS="0.5",
    )
    settings.REDIS_URL = redis_url
    digest = make_digest(3)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    with celery_worker(env, tmp_path / "worker.log"):
        newsdigest("send", str(digest.pk), "--yes", env=env)
        wait_for(lambda: Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT, 60,
                         what="the digest to be sent")
        [eml] = outbox.glob("*.eml")
        text = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
        links = re.findall(r"\[\d+\] (\S+/r/\S+)", text)
        assert len(links) >= 3
        first, second = (urlsplit(link) for link in links[:2])
        assert re.fullmatch(r"t=[0-9a-f]+", first.query)  # the delivery stamp, and nothing about the reader
        # The reader comes back 10 s after delivery: the scanner window (0 s here, widened by the stamp's
        # 5 s rounding) is behind them however fast this machine delivered and clicked.
        later = f"t={int(first.query[2:], 16) - 2:x}"
        reader = client.get(f"{first.path}?{later}", HTTP_USER_AGENT=BROWSER)
        scanner = client.get(f"{second.path}?{second.query}", HTTP_USER_AGENT="Mozilla/5.0 (compatible; Proofpoint)")
        assert reader.status_code == scanner.status_code == 302
        assert clicks.pending() == 2  # in Redis, for the worker's flush
        time.sleep(0.6)  # past the burst window, so the flush judges both hits now
        with Connection(redis_url) as connection:
            app.send_task("worker.tasks.flush_clicks", connection=connection)
        wait_for(lambda: ClickCount.objects.count() == 2, 30, what="the worker to flush the clicks")
    counts = {c.item.position: (c.clicks, c.filtered) for c in ClickCount.objects.select_related("item")}
    assert counts == {0: (1, 0), 1: (0, 1)}
