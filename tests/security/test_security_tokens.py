"""Issue 13.12: tokens and links that outlive their purpose, names that hide what they say."""

import io
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.helpers.factories import make_digest
from worker import ops, subscribers
from worker.models import ApiToken, Newsletter, Source, Subscriber, Subscription, hash_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def operator() -> User:
    user = User.objects.create_user("opal", "opal@example.com", "a-long-password")
    call_command("setup_roles", "--assign", "opal", "ops", stdout=io.StringIO())
    return User.objects.get(pk=user.pk)


@pytest.fixture
def digest():
    return make_digest(stories=1)


def api_status(digest, key: str) -> int:
    return Client().get(reverse("api-ops-status", args=[digest.pk]), HTTP_AUTHORIZATION=f"Token {key}").status_code


# --- ops API tokens ---------------------------------------------------------------------------------

def test_an_ops_token_works_and_is_stored_only_as_a_hash(operator, digest):
    key = ops.api_token(operator)
    assert api_status(digest, key) == 200
    stored = ApiToken.objects.get()
    assert stored.key_hash == hash_token(key) and key not in str(vars(stored))


def test_an_expired_ops_token_is_refused(operator, digest):
    key = ops.api_token(operator, days=1)
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert api_status(digest, key) == 401


def test_an_ops_token_dies_with_a_password_change(operator, digest):
    key = ops.api_token(operator)
    operator.set_password("another-long-password")
    operator.save()
    assert api_status(digest, key) == 401


def test_a_revoked_ops_token_is_refused(operator, digest):
    key = ops.api_token(operator)
    out = io.StringIO()
    call_command("ops", "revoke-tokens", "opal", stdout=out)
    assert "1 tokens of opal revoked" in out.getvalue()
    assert api_status(digest, key) == 401


def test_an_old_style_signed_token_is_no_longer_accepted(operator, digest):
    from django.core import signing

    forged = signing.dumps({"u": operator.pk}, salt="newsdigest.ops-api")
    assert api_status(digest, forged) == 401


# --- source API tokens ------------------------------------------------------------------------------

def test_a_source_token_is_stored_only_as_its_hash():
    source = Source.objects.create(name="Wire", kind=Source.Kind.API)
    token = source.issue_api_token()
    source.refresh_from_db()
    assert source.api_token == hash_token(token) and token not in source.api_token


def test_the_stored_hash_of_a_source_token_does_not_authenticate():
    source = Source.objects.create(name="Wire", kind=Source.Kind.API)
    source.issue_api_token()
    source.refresh_from_db()
    response = Client().post("/api/articles", "{}", content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {source.api_token}")
    assert response.status_code == 401


def test_the_admin_shows_a_new_source_token_once():
    source = Source.objects.create(name="Wire", kind=Source.Kind.API)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-password"))
    response = admin.post(reverse("admin:worker_source_changelist"),
                          {"action": "issue_api_tokens", "_selected_action": [source.pk]}, follow=True)
    token = re.search(r"Bearer (\S+)", response.content.decode()).group(1)
    source.refresh_from_db()
    assert source.api_token == hash_token(token)
    assert token not in admin.get(reverse("admin:worker_source_change", args=[source.pk])).content.decode()


# --- confirmation links ----------------------------------------------------------------------------

@pytest.fixture
def newsletter():
    return Newsletter.objects.create(name="Morning Brief", slug="brief", from_email="brief@news.example")


def link_of(message) -> str:
    return re.search(r"http://\S+(/confirm/\S+)", message.body).group(1)


def test_an_old_confirmation_link_does_not_resubscribe_someone_who_unsubscribed(newsletter):
    subscribers.subscribe(newsletter, "ada@example.com")
    old_link = link_of(mail.outbox[0])
    client = Client()
    client.post(old_link)
    subscription = Subscription.objects.get()
    from worker import render

    subscribers.unsubscribe(render.unsubscribe_token(subscription.subscriber, newsletter))
    assert client.post(old_link).status_code == 404
    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED


def test_a_link_from_a_new_sign_up_after_unsubscribing_confirms(newsletter):
    from worker import render

    subscribers.subscribe(newsletter, "ada@example.com")
    Client().post(link_of(mail.outbox[0]))
    subscribers.unsubscribe(render.unsubscribe_token(Subscriber.objects.get(), newsletter))
    subscribers.subscribe(newsletter, "ada@example.com")
    old_link, new_link = link_of(mail.outbox[0]), link_of(mail.outbox[1])
    assert Client().post(old_link).status_code == 404  # the first link stays spent
    assert Client().post(new_link).status_code == 200
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE


# --- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Ada\x00Lovelace", "Ada\x1b[31m", "Ada\x07"])
def test_a_name_with_nul_or_control_characters_is_refused(name):
    with pytest.raises(subscribers.InvalidSubscriber, match="control character"):
        subscribers.clean_name(name)


def test_bidi_controls_are_stripped_from_names():
    assert subscribers.clean_name("Ada \u202egnp.exe\u202c \u2066x\u2069") == "Ada gnp.exe x"


def test_a_nul_in_a_sign_up_name_answers_400_on_every_database(newsletter):
    response = Client(REMOTE_ADDR="203.0.113.77").post("/subscribe/brief/", {"email": "a@example.com",
                                                                              "name": "A\x00B"})
    assert response.status_code == 400 and not Subscriber.objects.exists()
