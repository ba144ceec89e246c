"""/health and /metrics."""

import re

import pytest
import redis

from tests.helpers.factories import make_digest
from tests.helpers.processes import free_port
from worker.models import Delivery, Summary

pytestmark = pytest.mark.django_db

SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$')


def use_broker(settings, url: str) -> None:
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    settings.CELERY_TASK_ALWAYS_EAGER = False


def test_health_is_ok_in_the_embedded_default(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["required"] is False and body["checks"]["broker"]["required"] is False


def test_health_checks_a_configured_redis_and_broker(client, settings, redis_url):
    use_broker(settings, redis_url)
    checks = client.get("/health").json()["checks"]
    assert checks["redis"]["ok"] is True and checks["broker"]["ok"] is True


def test_health_is_503_when_the_broker_is_down(client, settings):
    use_broker(settings, f"redis://:secret@127.0.0.1:{free_port()}/0")
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["broker"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["error"]
    assert "secret" not in response.content.decode()


def test_metrics_are_prometheus_text_with_the_pipeline_counts(client):
    digest = make_digest(stories=2)
    Summary.objects.filter(pk=digest.items.first().summary_id).update(flags=["unsupported claim"],
                                                                      prompt_tokens=120, completion_tokens=30)
    subscriber = digest.newsletter.subscriptions.get().subscriber
    Delivery.objects.create(digest=digest, subscriber=subscriber, status=Delivery.Status.FAILED)
    response = client.get("/metrics")
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = response.content.decode().splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert all(SAMPLE.match(line) for line in samples), [line for line in samples if not SAMPLE.match(line)]
    # prometheus_client writes values as Go floats (2.0) and counters with the suffix _total.
    assert 'newsdigest_articles{status="summarized"} 2.0' in samples  # the wire copy of a story is still new
    assert 'newsdigest_summaries{engine="offline",status="flagged"} 1.0' in samples
    assert 'newsdigest_summaries{engine="offline",status="clean"} 1.0' in samples
    assert 'newsdigest_llm_tokens_total{engine="offline",kind="prompt"} 120.0' in samples
    assert 'newsdigest_deliveries{status="failed"} 1.0' in samples
    assert 'newsdigest_digests{status="draft"} 1.0' in samples
    assert "newsdigest_send_rate_per_second 0.0" in samples
    assert "# TYPE newsdigest_deliveries gauge" in lines
    assert "# TYPE newsdigest_llm_tokens_total counter" in lines
    assert not any(line.startswith("newsdigest_queue_depth") for line in samples)  # eager: no queue


def test_metrics_report_the_celery_queue_depth(client, settings, redis_url):
    use_broker(settings, redis_url)
    settings.NEWSDIGEST_CELERY_QUEUE = "metrics-test-queue"
    queue = redis.Redis.from_url(redis_url)
    queue.delete("metrics-test-queue")
    queue.rpush("metrics-test-queue", "a", "b", "c")
    try:
        assert 'newsdigest_queue_depth{queue="metrics-test-queue"} 3.0' in client.get("/metrics").content.decode()
    finally:
        queue.delete("metrics-test-queue")


@pytest.mark.django_db
def test_the_front_page_leads_to_the_archive(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/archive/"
