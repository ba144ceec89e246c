"""The ops console's bounce list, un-suppressing (audited) and the bounce/complaint rates in the console
and /metrics."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.helpers.factories import approved_digest
from worker import bounces, deliver
from worker.models import AuditEntry, Delivery, Digest, Subscriber

pytestmark = pytest.mark.usefixtures("fast_passwords")


def client_for(role: str) -> tuple[Client, User]:
    call_command("setup_roles", stdout=io.StringIO())
    user = User.objects.create_user(role, f"{role}@example.com", "a-long-password")
    call_command("setup_roles", "--assign", role, role, stdout=io.StringIO())
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def bounced():
    """A sent digest with one hard-bounced and one policy-bounced reader."""
    digest = approved_digest(2)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT, send_started_at=timezone.now())
    rows = [Delivery.objects.create(digest=digest, subscriber=s, status=Delivery.Status.SENT,
                                    message_id=deliver.message_id(digest, s))
            for s in Subscriber.objects.order_by("pk")]
    bounces.suppress(rows[0].subscriber.email, "hard_bounce", detail="550 5.1.1 <x>: user unknown", status="5.1.1",
                     delivery=rows[0])
    bounces.suppress(rows[1].subscriber.email, "policy", detail="554 5.7.1 blocked using zen.spamhaus.org",
                     status="5.7.1", delivery=rows[1])
    return digest, rows


@pytest.mark.django_db
def test_the_console_lists_recent_bounces_with_class_and_the_servers_words(bounced):
    client, _ = client_for("ops")
    page = client.get("/desk/ops/bounces/").content.decode()
    assert "user unknown" in page and "zen.spamhaus.org" in page
    assert "Hard Bounce" in page and "Policy Bounce" in page
    assert page.count("Un-suppress") == 1  # the policy-bounced reader was never suppressed


@pytest.mark.django_db
def test_an_operator_unsuppresses_from_the_console_and_it_is_audited(bounced):
    _, rows = bounced
    client, user = client_for("ops")
    client.post("/desk/ops/bounces/unsuppress", {"email": rows[0].subscriber.email})
    rows[0].subscriber.refresh_from_db()
    assert rows[0].subscriber.status == Subscriber.Status.ACTIVE
    assert AuditEntry.objects.get(action="unsuppressed").user == user


@pytest.mark.django_db
def test_an_editor_can_neither_see_bounces_nor_unsuppress(bounced):
    _, rows = bounced
    client, _ = client_for("editor")
    assert client.get("/desk/ops/bounces/").status_code == 403
    assert client.post("/desk/ops/bounces/unsuppress", {"email": rows[0].subscriber.email}).status_code == 403
    rows[0].subscriber.refresh_from_db()
    assert rows[0].subscriber.status == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_the_digest_page_shows_its_bounce_and_complaint_rates(bounced):
    digest, _ = bounced
    client, _ = client_for("ops")
    page = client.get(f"/desk/ops/digests/{digest.pk}/").content.decode()
    assert "Of 2 messages sent: 1 hard bounces (50.00%), 1 policy bounces (hard+policy 100.00%" in page


@pytest.mark.django_db
def test_metrics_report_each_recent_digests_rates(bounced, client):
    digest, _ = bounced
    text = client.get("/metrics").content.decode()
    # prometheus_client writes values as Go floats (1.0) and counters with the suffix _total.
    assert f'newsdigest_digest_hard_bounce_rate{{digest="{digest.pk}"}} 0.5' in text
    assert f'newsdigest_digest_bounce_rate{{digest="{digest.pk}"}} 1.0' in text
    assert f'newsdigest_digest_complaint_rate{{digest="{digest.pk}"}} 0.0' in text
    assert 'newsdigest_suppression_events_total{kind="policy"} 1.0' in text
