"""MAIL FROM goes out before the message is serialised (issue 18): the server's reply is read after the
MIME bytes are built. A message that cannot be serialised must not leave that reply unread on the
kept-open connection, or every later message would read its predecessor's replies."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.helpers.factories import approved_digest
from worker import deliver, render
from worker.deliver import sending
from worker.models import Subscriber


@pytest.mark.django_db
def test_a_message_that_fails_to_serialise_after_mail_from_leaves_a_clean_connection(smtp, settings):
    digest = approved_digest(2)
    rendered = render.ensure_rendered(digest)
    first, second = Subscriber.objects.filter(subscriptions__newsletter=digest.newsletter).order_by("pk")
    mailer = sending.Mailer()
    try:
        assert mailer.send(deliver.build_message(digest, first, rendered)).kind == "sent"  # the connection is open
        settings.NEWSDIGEST_DKIM_SELECTOR, settings.NEWSDIGEST_DKIM_DOMAIN = "nd", "news.example.com"
        settings.NEWSDIGEST_DKIM_PRIVATE_KEY = "not a key"
        with pytest.raises(ImproperlyConfigured, match="DKIM signing failed"):
            mailer.send(deliver.build_message(digest, second, rendered))
        settings.NEWSDIGEST_DKIM_SELECTOR = settings.NEWSDIGEST_DKIM_DOMAIN = ""
        settings.NEWSDIGEST_DKIM_PRIVATE_KEY = ""
        outcome = mailer.send(deliver.build_message(digest, second, rendered))
    finally:
        mailer.close()
    assert (outcome.kind, outcome.reply.split()[0]) == ("sent", "250")
    assert [m["To"].addresses[0].addr_spec for m in smtp.messages] == [first.email, second.email]
