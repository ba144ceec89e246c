"""Crash test: real workers SIGKILLed mid-send, a flaky SMTP server; nothing lost, every double flagged."""

import subprocess
import sys
import uuid
from collections import Counter

import kombu
import pytest

from tests.helpers.factories import approved_digest
from tests.helpers.mail import sink_record, smtp_sink
from tests.helpers.paths import REPO
from tests.helpers.processes import (
    kill_group,
    newsdigest,
    rabbitmq_or_skip,
    start_worker,
    subprocess_env,
    wait_for,
)
from worker import deliver, render
from worker.models import Delivery, Digest

SUBSCRIBERS = 2000
@pytest.fixture
def broker(request, redis_url):
    """The Celery broker: the test's private Redis, or RabbitMQ (with Redis kept for limits) on a queue
    of its own, so parallel runs sharing one RabbitMQ never take each other's messages."""
    if request.param == "redis":
        yield {"CELERY_BROKER_URL": redis_url}
        return
    queue = f"nd-crash-{uuid.uuid4().hex[:12]}"
    amqp_url = rabbitmq_or_skip()
    yield {"CELERY_BROKER_URL": amqp_url, "NEWSDIGEST_CELERY_QUEUE": queue}
    with kombu.Connection(amqp_url, connect_timeout=2) as conn:
        conn.default_channel.queue_delete(queue)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
# The sink with and without PIPELINING (with it, a dropped connection cuts a pipelined envelope); RabbitMQ
# once, against the pipelining sink, the way production MTAs answer.
@pytest.mark.parametrize(("broker", "pipelining"), [("redis", False), ("redis", True), ("amqp", True)],
                         ids=["redis", "redis-pipelining", "amqp-pipelining"], indirect=["broker"])
def test_killed_workers_and_a_flaky_server_lose_nothing(tmp_path, redis_url, broker, pipelining):
    digest = approved_digest(SUBSCRIBERS, unsubscribed=25, bounced=25)
    render.ensure_rendered(digest)
    record = tmp_path / "received.tsv"
    with smtp_sink(record, tempfail=0.05, drop=0.02, pipelining=pipelining) as port:
        env = subprocess_env(
            **broker,
            REDIS_URL=redis_url, EMAIL_URL=f"smtp://127.0.0.1:{port}", NEWSDIGEST_VAR_DIR=str(tmp_path / "var"),
            NEWSDIGEST_DELIVERY_LEASE_SECONDS="5", NEWSDIGEST_DELIVERY_NUDGE_SECONDS="8",
            NEWSDIGEST_DELIVERY_BACKOFF_BASE="0.5", NEWSDIGEST_DELIVERY_BACKOFF_MAX="3",
            NEWSDIGEST_DELIVERY_MAX_ATTEMPTS="12", NEWSDIGEST_DELIVERY_PAUSE_AFTER_ERRORS="0",
            NEWSDIGEST_SEND_BATCH_SIZE="50", NEWSDIGEST_SEND_RATE="400",
        )
        workers = {name: start_worker(env, tmp_path / f"{name}.log", 2, name) for name in ("w1", "w2")}
        sweeper = subprocess.Popen(
            [sys.executable, "-m", "worker", "sweep", "--every", "1"], env=env, cwd=REPO,
            stdout=open(tmp_path / "sweep.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True)
        try:
            newsdigest("send", str(digest.pk), "--yes", env=env)
            kills = 0
            for threshold, name in ((300, "w1"), (900, "w2"), (1400, "w1")):
                wait_for(lambda t=threshold: len(sink_record(record)) >= t, 60,
                                 what=f"{threshold} messages")
                kill_group(workers[name])
                kills += 1
                workers[name] = start_worker(env, tmp_path / f"{name}.log", 2, name)
            wait_for(lambda: _status(digest) == Digest.Status.SENT, 150, interval=0.5,
                             what="the digest to be sent")
        finally:
            for proc in [*workers.values(), sweeper]:
                kill_group(proc)
    received = Counter(rcpt for _, rcpt in sink_record(record))
    rows = Delivery.objects.filter(digest=digest).select_related("subscriber")
    active = {d.subscriber.email for d in rows}
    report = deliver.report(digest.pk)
    flagged = {r["email"] for r in report["possible_duplicate_rows"]}
    failed = {d.subscriber.email for d in rows.filter(status=Delivery.Status.FAILED)}

    assert kills >= 2
    assert rows.filter(attempts__gt=1).count() > SUBSCRIBERS * 0.03, "the server's 451s and drops were retried"
    assert len(active) == SUBSCRIBERS
    # 451s and drops are temporary: with a 12-attempt cap nobody should end failed, so 0 lost means everyone.
    assert not failed, f"permanent failures: {sorted(failed)[:5]}"
    assert active <= set(received), "an active subscriber got nothing"
    assert set(rows.values_list("status", flat=True)) == {Delivery.Status.SENT}
    doubles = {email for email, n in received.items() if n > 1}
    assert doubles <= flagged
    assert sum(n - 1 for n in received.values()) <= len(flagged)
    assert not {e for e in received if e.startswith(("unsub", "bounced"))}
    assert report["status"] == Digest.Status.SENT and report["remaining"] == 0


def _status(digest: Digest) -> str:
    return Digest.objects.filter(pk=digest.pk).values_list("status", flat=True).get()

