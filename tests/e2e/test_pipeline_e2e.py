"""The whole pipeline through a real Celery worker and a private Redis, tasks not eager."""

import html
import re
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime

import pytest

from tests.helpers.paths import REPO
from tests.helpers.processes import celery_worker, newsdigest, subprocess_env, wait_for
from worker.models import Article, Delivery, Digest, Newsletter, Subscriber, Subscription

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEMO_DATA = REPO / "worker" / "demo_data"


def _subscribe(newsletter: Newsletter, email: str, name: str = "", status: str = "active") -> Subscriber:
    subscriber = Subscriber.objects.create(email=email, name=name, status=status)
    Subscription.objects.create(subscriber=subscriber, newsletter=newsletter, status="active")
    return subscriber


@pytest.fixture
def pipeline(tmp_path, redis_url):
    outbox = tmp_path / "outbox"
    env = subprocess_env(
        REDIS_URL=redis_url, NEWSDIGEST_OUTBOX_DIR=str(outbox), NEWSDIGEST_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="e2e-" + "k" * 30 + "0123456789abcdefghij", NEWSDIGEST_SUMMARY_ENGINE="offline",
    )
    with celery_worker(env, tmp_path / "worker.log"):
        yield env, outbox


def test_ingest_to_send_through_a_real_worker(pipeline):
    env, outbox = pipeline
    newsletter = Newsletter.objects.create(name="E2E Daily", slug="e2e", postal_address="1 Test Road")
    active = [_subscribe(newsletter, f"reader{i}@example.com", f"Reader {i}") for i in range(3)]
    _subscribe(newsletter, "gone@example.com", status="unsubscribed")

    newsdigest("ingest", str(DEMO_DATA), env=env)
    expected = Article.objects.count()
    assert expected >= 5
    wait_for(lambda: Article.objects.filter(status="summarized").count() == expected, 60,
                     what="the worker to summarize every article")

    built = newsdigest("digest", "build", "e2e", env=env).stdout
    digest_id = int(re.search(r"digest (\d+)", built).group(1))
    newsdigest("digest", "approve", str(digest_id), env=env)
    newsdigest("send", str(digest_id), "--yes", env=env)
    wait_for(lambda: Digest.objects.get(pk=digest_id).status == Digest.Status.SENT, 60,
                     what="the digest to be sent")

    files = sorted(outbox.glob("*.eml"))
    assert len(files) == len(active)
    digest = Digest.objects.get(pk=digest_id)
    items = list(digest.items.all())
    recipients = set()
    for path in files:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.add(message["To"].addresses[0].addr_spec)
        assert message.get_content_type() == "multipart/alternative"
        assert message["From"].addresses[0].addr_spec
        assert message["Subject"] == digest.subject
        assert parsedate_to_datetime(message["Date"]).tzinfo is not None
        assert re.fullmatch(r"<nd\.\d+\.\d+@[\w.-]+>", message["Message-ID"])
        assert message["List-Id"].endswith(">")
        assert re.fullmatch(r"<https?://[^>]+/u/[^>]+>, <mailto:[^>]+>", " ".join(message["List-Unsubscribe"].split()))
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # The text part wraps at 72 columns, so compare with whitespace folded.
        text = " ".join(message.get_body(("plain",)).get_content().split())
        body_html = " ".join(html.unescape(message.get_body(("html",)).get_content()).split())
        for item in items:
            assert " ".join(item.headline.split()) in text
            assert " ".join(item.summary_text.split()) in body_html
    assert recipients == {s.email for s in active}
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
