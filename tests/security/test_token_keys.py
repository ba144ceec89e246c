"""Signers are made once, but never outlive the key they were made with."""

import pytest

from worker import tokens


def test_a_token_minted_after_the_key_changes_is_signed_with_the_new_key(settings):
    tokens.dumps(tokens.Purpose.UNSUBSCRIBE, {"s": 1, "n": 1})  # a signer made with the old key
    settings.SECRET_KEY = "a-rotated-secret-key-that-is-long-enough-for-django-checks"
    fresh = tokens.dumps(tokens.Purpose.UNSUBSCRIBE, {"s": 1, "n": 1})
    assert tokens.loads(tokens.Purpose.UNSUBSCRIBE, fresh) == {"s": 1, "n": 1}


def test_a_click_signature_made_with_the_old_key_fails_once_the_key_changes(settings):
    old = tokens.sign(tokens.Purpose.CLICK_READER, "42")
    settings.SECRET_KEY = "a-rotated-secret-key-that-is-long-enough-for-django-checks"
    with pytest.raises(tokens.BadToken):
        tokens.unsign(tokens.Purpose.CLICK_READER, old)
