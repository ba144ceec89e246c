"""Subscriber state changes shared by the web pages, the CLI and the mail handlers."""

from django.core import signing
from django.utils import timezone

from . import render
from .models import Subscription

TOKEN_MAX_AGE = None  # unsubscribe links in old emails must keep working


def unsubscribe(token: str) -> Subscription:
    """Idempotent: a second click, or a link scanner's POST after the user's, changes nothing."""
    data = signing.loads(token, salt=render.UNSUBSCRIBE_SALT, max_age=TOKEN_MAX_AGE)
    subscription = Subscription.objects.select_related("newsletter", "subscriber").get(
        subscriber_id=data["s"], newsletter_id=data["n"])
    Subscription.objects.filter(pk=subscription.pk).exclude(status=Subscription.Status.UNSUBSCRIBED).update(
        status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now())
    subscription.refresh_from_db()
    return subscription


def subscription_for_token(token: str) -> Subscription:
    data = signing.loads(token, salt=render.UNSUBSCRIBE_SALT, max_age=TOKEN_MAX_AGE)
    return Subscription.objects.select_related("newsletter", "subscriber").get(
        subscriber_id=data["s"], newsletter_id=data["n"])
