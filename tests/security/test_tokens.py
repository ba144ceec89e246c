"""worker.tokens mints exactly what the code minted before it existed, so links already mailed keep
working: each purpose against django.core.signing called the old way, with the old salt."""

import time

import pytest
from django.core import signing

from worker import clicks, subscribers, tokens
from worker.models import Newsletter, Subscriber, Subscription

OLD_SALTS = {
    tokens.Purpose.CONFIRM: "newsdigest.confirm",
    tokens.Purpose.UNSUBSCRIBE: "newsdigest.unsubscribe",
    tokens.Purpose.PREFERENCES: "newsdigest.preferences",
    tokens.Purpose.CLICK: "newsdigest.click",
    tokens.Purpose.CLICK_READER: "newsdigest.click-reader",
}


@pytest.fixture
def frozen_stamp(monkeypatch):
    # Timed tokens carry a one-second timestamp: pinned, so two mints can be compared byte for byte.
    stamp = signing.b62_encode(int(time.time()))
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: stamp)


def test_every_purpose_keeps_its_old_salt():
    assert {purpose: purpose.value for purpose in tokens.Purpose} == OLD_SALTS


@pytest.mark.parametrize("purpose", [tokens.Purpose.CONFIRM, tokens.Purpose.UNSUBSCRIBE, tokens.Purpose.PREFERENCES])
def test_timed_tokens_are_byte_identical_to_the_old_ones(frozen_stamp, purpose):
    value = {"s": 7, "n": 3, "u": ""}
    old = signing.dumps(value, salt=OLD_SALTS[purpose], compress=True)
    assert tokens.dumps(purpose, value) == old
    assert tokens.loads(purpose, old, max_age=60) == value


def test_click_tokens_are_byte_identical_to_the_old_ones():
    old = signing.Signer(salt="newsdigest.click").sign_object([5, "https://news.example/a"], compress=True)
    assert tokens.sign_object(tokens.Purpose.CLICK, [5, "https://news.example/a"]) == old
    assert clicks.open_token(old) == (5, "https://news.example/a")
    old_reader = signing.Signer(salt="newsdigest.click-reader").sign("42")
    assert tokens.sign(tokens.Purpose.CLICK_READER, "42") == old_reader
    assert tokens.unsign(tokens.Purpose.CLICK_READER, old_reader) == "42"


def test_a_token_of_one_purpose_does_not_verify_for_another():
    token = tokens.dumps(tokens.Purpose.UNSUBSCRIBE, {"s": 1, "n": 1})
    with pytest.raises(tokens.BadToken):
        tokens.loads(tokens.Purpose.PREFERENCES, token)


@pytest.mark.django_db
def test_links_minted_the_old_way_still_work(client):
    newsletter = Newsletter.objects.create(name="Daily", slug="daily")
    subscriber = Subscriber.objects.create(email="ada@example.com", status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=subscriber, newsletter=newsletter, status=Subscription.Status.ACTIVE)
    old_unsubscribe = signing.dumps({"s": subscriber.pk, "n": newsletter.pk}, salt="newsdigest.unsubscribe",
                                    compress=True)
    old_preferences = signing.dumps({"s": subscriber.pk}, salt="newsdigest.preferences", compress=True)
    assert subscribers.subscription_for_token(old_unsubscribe).subscriber == subscriber
    response = client.get(f"/preferences/{old_preferences}")
    assert response.status_code == 200 and b"ada@example.com" in response.content
