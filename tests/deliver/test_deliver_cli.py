"""`newsdigest send`: start, refuse, steer and report a send."""

import json
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.models import Delivery, Digest


@pytest.fixture
def digest():
    digest = approved_digest(4, unsubscribed=1)
    render.ensure_rendered(digest)
    return digest


def send(*args) -> str:
    out = StringIO()
    call_command("send", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_without_yes_and_without_a_terminal_it_refuses(digest):
    with pytest.raises(CommandError, match="pass --yes"):
        send(digest.pk)
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.APPROVED


@pytest.mark.django_db
def test_send_yes_fans_out_to_the_workers(digest, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = send(digest.pk, "--yes")
    assert "to 4 subscribers" in out
    assert len(mail.outbox) == 4
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT


@pytest.mark.django_db
def test_a_second_send_gets_a_clear_error(digest):
    send(digest.pk, "--yes")
    with pytest.raises(CommandError, match="only an approved digest"):
        send(digest.pk, "--yes")


@pytest.mark.django_db
def test_a_draft_is_refused(digest):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.DRAFT)
    with pytest.raises(CommandError, match="approve it|only an approved"):
        send(digest.pk, "--yes")


@pytest.mark.django_db
def test_dry_run_sends_nothing(digest):
    assert "would send digest" in send(digest.pk, "--dry-run")
    assert not Delivery.objects.exists() and not mail.outbox


@pytest.mark.django_db
def test_pause_resume_and_status(digest):
    send(digest.pk, "--yes")
    send(digest.pk, "--pause")
    with pytest.raises(CommandError, match="only a sending digest"):
        send(digest.pk, "--pause")
    status = json.loads(send(digest.pk, "--status"))
    assert status["status"] == Digest.Status.PAUSED
    assert "sending again" in send(digest.pk, "--resume")


@pytest.mark.django_db
def test_cancel_skips_the_unsent_rows(digest):
    deliver.begin_send(digest.pk)
    deliver.fan_out(digest.pk)
    assert "4 deliveries skipped" in send(digest.pk, "--cancel")
    assert json.loads(send(digest.pk, "--status"))["skipped"] == 4
