"""The send loop's third pass (issue 18): claimed rows as plain columns, not ORM objects; the unsubscribe
token signed once per message; messages built from a claimed row the same as from its Subscriber."""

from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from django.core import signing

from tests.helpers.factories import approved_digest
from worker import deliver, render, tokens
from worker.deliver import claims
from worker.models import Delivery, Subscriber


def _claimed(subscribers: int):
    digest = approved_digest(subscribers)
    render.ensure_rendered(digest)
    deliver.begin_send(digest.pk)
    ids = [pk for batch in deliver.fan_out(digest.pk) for pk in batch]
    return digest, deliver.claim(ids, "me")


@pytest.mark.django_db
def test_it_claims_rows_with_the_columns_the_loop_needs():
    digest, rows = _claimed(3)
    assert all(isinstance(row, claims.Claimed) for row in rows)
    for row in rows:
        stored = Delivery.objects.select_related("subscriber").get(pk=row.pk)
        assert (stored.status, stored.claimed_by) == (Delivery.Status.SENDING, "me")
        assert (row.digest_id, row.subscriber_id, row.attempts) == (digest.pk, stored.subscriber_id, 1)
        person = stored.subscriber
        assert row.subscriber == render.Recipient(person.pk, person.email, person.name, person.format)


@pytest.mark.django_db
def test_it_signs_the_unsubscribe_token_once_per_message(monkeypatch):
    digest, rows = _claimed(1)
    minted = []
    dumps = tokens.dumps

    def counting(purpose, value):
        token = dumps(purpose, value)
        minted.append((purpose, token))
        return token

    monkeypatch.setattr(tokens, "dumps", counting)
    message = deliver.build_message(digest, rows[0].subscriber, render.ensure_rendered(digest))
    unsubscribe = [token for purpose, token in minted if purpose == tokens.Purpose.UNSUBSCRIBE]
    assert len(unsubscribe) == 1
    (token,) = unsubscribe
    url = render.unsubscribe_url(rows[0].subscriber, digest.newsletter, token)
    header = message.extra_headers["List-Unsubscribe"]
    assert header.startswith(f"<{url}>, <mailto:")
    assert unquote(header).endswith(f"?subject=unsubscribe {token}>")
    assert url in message.body
    assert tokens.loads(tokens.Purpose.UNSUBSCRIBE, token) == {"s": rows[0].subscriber_id, "n": digest.newsletter_id}


@pytest.mark.django_db
def test_a_message_built_from_a_claimed_row_is_the_one_built_from_its_subscriber(monkeypatch):
    digest, rows = _claimed(2)
    Subscriber.objects.filter(pk=rows[1].subscriber_id).update(format=Subscriber.Format.TEXT, name="")  # both kinds
    moment = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: moment)
    monkeypatch.setattr(signing.time, "time", lambda: moment.timestamp())
    rendered = render.ensure_rendered(digest)
    for row in rows:
        person = Subscriber.objects.get(pk=row.subscriber_id)
        recipient = render.Recipient(person.pk, person.email, person.name, person.format)
        from_row = deliver.build_message(digest, recipient, rendered)
        from_model = deliver.build_message(digest, person, rendered)
        assert (from_row.subject, from_row.from_email, from_row.to, from_row.extra_headers, from_row.body,
                from_row.alternatives, from_row.envelope_recipients) == (
            from_model.subject, from_model.from_email, from_model.to, from_model.extra_headers, from_model.body,
            from_model.alternatives, from_model.envelope_recipients)
