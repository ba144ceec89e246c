"""Unsubscribe: GET never acts, RFC 8058 one-click POST without CSRF, idempotent; mailto via inbound mail."""

import sys
from email.message import EmailMessage
from io import BytesIO, StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.helpers.factories import approved_digest
from worker import bounces, render
from worker.models import Subscription, SuppressionEvent


@pytest.fixture
def subscription():
    digest = approved_digest(1)
    return Subscription.objects.select_related("subscriber", "newsletter").get(newsletter=digest.newsletter)


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


def url(subscription) -> str:
    return "/u/" + render.unsubscribe_token(subscription.subscriber, subscription.newsletter)


def status(subscription) -> str:
    return Subscription.objects.get(pk=subscription.pk).status


@pytest.mark.django_db
def test_get_shows_a_button_and_never_unsubscribes(client, subscription):
    response = client.get(url(subscription))
    assert response.status_code == 200 and b"<button" in response.content
    assert status(subscription) == Subscription.Status.ACTIVE


@pytest.mark.django_db
def test_one_click_post_unsubscribes_without_csrf_or_login(client, subscription):
    response = client.post(url(subscription), "List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert status(subscription) == Subscription.Status.UNSUBSCRIBED


@pytest.mark.django_db
def test_one_click_post_is_idempotent(client, subscription):
    for _ in range(3):
        assert client.post(url(subscription), {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert status(subscription) == Subscription.Status.UNSUBSCRIBED
    assert SuppressionEvent.objects.filter(kind=SuppressionEvent.Kind.UNSUBSCRIBE).count() == 1


@pytest.mark.django_db
def test_a_tampered_token_is_a_404_and_changes_nothing(client, subscription):
    assert client.post(url(subscription)[:-2] + "xx", {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert status(subscription) == Subscription.Status.ACTIVE


@pytest.mark.django_db
def test_other_methods_are_refused(client, subscription):
    assert client.put(url(subscription)).status_code == 405


def unsubscribe_mail(subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "reader@example.com", "unsubscribe@x.example", subject
    message.set_content("")
    return message.as_bytes()


@pytest.mark.django_db
def test_a_mail_with_the_token_in_its_subject_unsubscribes(subscription):
    token = render.unsubscribe_token(subscription.subscriber, subscription.newsletter)
    assert bounces.handle_inbound(unsubscribe_mail(f"unsubscribe {token}")).startswith("unsubscribed")
    assert status(subscription) == Subscription.Status.UNSUBSCRIBED


@pytest.mark.django_db
def test_a_mail_without_a_valid_token_changes_nothing(subscription):
    assert bounces.handle_inbound(unsubscribe_mail("unsubscribe please")).startswith("ignored")
    assert status(subscription) == Subscription.Status.ACTIVE


@pytest.mark.django_db
def test_the_inbound_command_reads_the_message_on_stdin(subscription, monkeypatch):
    token = render.unsubscribe_token(subscription.subscriber, subscription.newsletter)
    stdin = StringIO()
    stdin.buffer = BytesIO(unsubscribe_mail(f"Re: unsubscribe {token}"))
    monkeypatch.setattr(sys, "stdin", stdin)
    out = StringIO()
    call_command("inbound", stdout=out)
    assert "unsubscribed" in out.getvalue()
    assert status(subscription) == Subscription.Status.UNSUBSCRIBED
