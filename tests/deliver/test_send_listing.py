"""`newsdigest send --dry-run` says who would get the digest; a refused send names the command that works."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.helpers.factories import approved_digest
from worker.models import Delivery, Digest, Subscriber, Subscription

pytestmark = pytest.mark.django_db


def send(*args) -> str:
    out = StringIO()
    call_command("send", *map(str, args), stdout=out)
    return out.getvalue()


def test_dry_run_lists_the_first_recipients_and_counts_everyone_by_status():
    digest = approved_digest(4, unsubscribed=1, bounced=2)
    newsletter = digest.newsletter
    Subscriber.objects.filter(email=f"user3.{newsletter.pk}@example.com").update(paused=True)
    pending = Subscriber.objects.create(email="new@example.com", status=Subscriber.Status.PENDING)
    Subscription.objects.create(subscriber=pending, newsletter=newsletter)
    assert send(digest.pk, "--dry-run", "--show", 2).splitlines() == [
        f"would send digest {digest.pk} \"Today's brief\" to 3 subscribers:",
        f"  user0.{newsletter.pk}@example.com",
        f"  user1.{newsletter.pk}@example.com",
        "  ... and 1 more",
        f"subscribers of {newsletter.slug}: 3 will receive, 1 pending, 1 paused, 1 unsubscribed, 2 bounced",
    ]
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.APPROVED


@pytest.mark.parametrize(("status", "step"), [
    (Digest.Status.DRAFT, "approve it first: newsdigest digest approve {pk}"),
    (Digest.Status.SENDING, "it is under way; follow it with: newsdigest send {pk} --status"),
    (Digest.Status.PAUSED, "continue it with: newsdigest send {pk} --resume"),
    (Digest.Status.SENT, "retry its failed deliveries with: newsdigest send {pk} --retry-failed, "
                         "or make a new digest: newsdigest digest build {slug}"),
    (Digest.Status.CANCELLED, "make a new digest: newsdigest digest build {slug}"),
])
def test_a_digest_that_cannot_be_sent_names_the_command_that_works(status, step):
    digest = approved_digest(1)
    Digest.objects.filter(pk=digest.pk).update(status=status)
    with pytest.raises(CommandError) as refused:
        send(digest.pk, "--yes")
    step = step.format(pk=digest.pk, slug=digest.newsletter.slug)
    assert str(refused.value) == f"digest {digest.pk} is {status}; only an approved digest can be sent: {step}"


def test_the_suggested_retry_failed_works_on_a_sent_digest(django_capture_on_commit_callbacks):
    digest = approved_digest(2)
    with django_capture_on_commit_callbacks(execute=True):
        send(digest.pk, "--yes")
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT
    failed = Delivery.objects.filter(digest=digest).first()
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        assert send(digest.pk, "--retry-failed") == f"digest {digest.pk}: 1 failed deliveries queued again\n"
    assert Delivery.objects.get(pk=failed.pk).status == Delivery.Status.SENT
