"""After a broker that lost its queue (a Redis restarted empty), the sweeper's bounded re-nudge chains
sweeps at the workers' pace instead of NEWSDIGEST_DELIVERY_NUDGE_LIMIT rows per sweep interval; with work
waiting in the broker it does not (issue 18)."""

import json
import uuid

import kombu
import pytest
import redis
from django.utils import timezone

from tests.helpers.deliveries import fanned_out_digest, lapse
from tests.helpers.mail import sink_record, smtp_sink
from tests.helpers.processes import (
    free_port,
    kill_group,
    newsdigest,
    rabbitmq_or_skip,
    start_worker,
    subprocess_env,
    wait_for,
)
from worker import broker
from worker.models import Delivery, Digest


def lost_backlog(n: int) -> Digest:
    """A sending digest whose rows were all nudged, and whose messages the broker then lost."""
    digest = fanned_out_digest(n)
    lapse(Delivery.objects.filter(digest=digest))
    return digest


def env_for(redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    return subprocess_env(REDIS_URL=redis_url, NEWSDIGEST_CELERY_QUEUE=queue, NEWSDIGEST_DELIVERY_NUDGE_LIMIT="20",
                          NEWSDIGEST_SEND_BATCH_SIZE="10", **extra)


def queued_tasks(redis_url: str, queue: str) -> list[str]:
    """The task names of the messages waiting in a Redis-backed Celery queue."""
    raw = redis.Redis.from_url(redis_url).lrange(queue, 0, -1)
    return [json.loads(message)["headers"]["task"] for message in raw]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_sweep_after_the_broker_lost_its_queue_drains_the_whole_backlog(tmp_path, redis_url):
    digest = lost_backlog(120)
    record = tmp_path / "received.tsv"
    with smtp_sink(record) as port:
        env = env_for(redis_url, f"nd-follow-{uuid.uuid4().hex[:8]}", EMAIL_URL=f"smtp://127.0.0.1:{port}",
                      NEWSDIGEST_VAR_DIR=str(tmp_path / "var"))
        worker = start_worker(env, tmp_path / "worker.log", 1, "w1")
        try:
            newsdigest("sweep", env=env)  # once: no beat and no --every to come back a minute later
            wait_for(lambda: Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count() == 120,
                     90, interval=0.5, what="the whole backlog sent after one sweep")
        finally:
            kill_group(worker)
    assert sorted(rcpt for _, rcpt in sink_record(record)) == sorted(
        Delivery.objects.filter(digest=digest).values_list("subscriber__email", flat=True))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sweep_queues_a_follow_up_only_while_the_broker_has_less_than_a_sweeps_worth_waiting(redis_url):
    digest = lost_backlog(100)
    queue = f"nd-follow-{uuid.uuid4().hex[:8]}"
    env = env_for(redis_url, queue)
    newsdigest("sweep", env=env)  # an empty broker: 2 batches of 10, and a follow-up sweep behind them
    assert queued_tasks(redis_url, queue).count("worker.tasks.sweep_deliveries") == 1
    newsdigest("sweep", env=env)  # no worker took anything: 3 messages (30 rows) wait, more than the limit of 20
    tasks = queued_tasks(redis_url, queue)
    assert tasks.count("worker.tasks.send_batch") == 4
    assert tasks.count("worker.tasks.sweep_deliveries") == 1
    assert Delivery.objects.filter(digest=digest, lease_until__lt=timezone.now()).count() == 60


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sweep_within_the_limit_queues_no_follow_up(redis_url):
    lost_backlog(15)
    queue = f"nd-follow-{uuid.uuid4().hex[:8]}"
    newsdigest("sweep", env=env_for(redis_url, queue))
    assert queued_tasks(redis_url, queue) == ["worker.tasks.send_batch"] * 2


def test_waiting_messages_counts_a_redis_queues_messages_and_an_empty_one_as_zero(settings, redis_url):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL, settings.NEWSDIGEST_CELERY_QUEUE = redis_url, f"nd-count-{uuid.uuid4().hex[:8]}"
    assert broker.waiting_messages() == 0
    with kombu.Connection(redis_url) as conn:
        producer = conn.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key=settings.NEWSDIGEST_CELERY_QUEUE,
                             declare=[kombu.Queue(settings.NEWSDIGEST_CELERY_QUEUE)])
    assert broker.waiting_messages() == 3


def test_waiting_messages_counts_a_rabbitmq_queues_messages(settings):
    amqp_url = rabbitmq_or_skip()
    queue = kombu.Queue(f"nd-count-{uuid.uuid4().hex[:8]}", auto_delete=False)
    with kombu.Connection(amqp_url, connect_timeout=2) as conn:
        producer = conn.Producer()
        for n in range(2):
            producer.publish({"n": n}, routing_key=queue.name, declare=[queue])
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL, settings.NEWSDIGEST_CELERY_QUEUE = amqp_url, queue.name
    try:
        assert broker.waiting_messages() == 2
    finally:
        with kombu.Connection(amqp_url) as conn:
            conn.default_channel.queue_delete(queue.name)


def test_waiting_messages_is_unknown_when_the_broker_does_not_answer(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert broker.waiting_messages(timeout=0.5) is None


def test_waiting_messages_is_unknown_when_tasks_run_inline(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert broker.waiting_messages() is None
