"""Issue 13.8: sign-up cannot be used to mail-bomb a victim, nor to learn who is on the list."""

import json
from unittest import mock

import pytest
from django.core import mail
from django.test import Client

from worker import subscribers, tasks
from worker.models import Newsletter, Subscriber, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def newsletter():
    subscribers._ip_bucket.cache_clear()
    yield Newsletter.objects.create(name="Morning Brief", slug="brief", from_email="brief@news.example")
    subscribers._ip_bucket.cache_clear()


def sign_up(remote_addr: str, email: str = "victim@example.com", **headers) -> int:
    client = Client(REMOTE_ADDR=remote_addr, **headers)
    response = client.post("/api/subscribe/brief", json.dumps({"email": email}), content_type="application/json")
    return response.status_code


def test_25_sign_ups_from_25_addresses_do_not_mail_the_victim_25_times(newsletter, settings):
    settings.NEWSDIGEST_CONFIRMATIONS_PER_ADDRESS_PER_DAY = 3
    statuses = [sign_up(f"203.0.113.{i}") for i in range(25)]
    assert statuses == [200] * 25  # the same answer each time
    assert len(mail.outbox) == 3


def test_the_address_limit_ignores_case(newsletter, settings):
    settings.NEWSDIGEST_CONFIRMATIONS_PER_ADDRESS_PER_DAY = 1
    sign_up("203.0.113.1", "Victim@Example.com")
    sign_up("203.0.113.2", "VICTIM@example.com")
    assert len(mail.outbox) == 1


def test_rotating_addresses_inside_one_ipv6_64_shares_one_limit(newsletter, settings):
    settings.NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR = 3
    statuses = [sign_up(f"2001:db8:1:2::{i:x}", f"p{i}@example.com") for i in range(1, 6)]
    assert statuses == [200, 200, 200, 429, 429]
    assert sign_up("2001:db8:1:3::1", "other@example.com") == 200  # the next /64 is someone else


def test_a_forged_x_forwarded_for_does_not_escape_the_limit(newsletter, settings):
    settings.NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR = 2
    settings.NEWSDIGEST_TRUSTED_PROXY_COUNT = 0  # no proxy in front: the header is the client's own words
    statuses = [sign_up("198.51.100.7", f"p{i}@example.com", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
                for i in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_behind_a_trusted_proxy_only_the_proxys_entry_counts(newsletter, settings):
    settings.NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR = 2
    settings.NEWSDIGEST_TRUSTED_PROXY_COUNT = 1
    # The client prepends junk; the proxy appends the real client address (203.0.113.9).
    statuses = [sign_up("10.0.0.2", f"p{i}@example.com", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.9")
                for i in range(3)]
    assert statuses == [200, 200, 429]
    # Two clients behind the same proxy are told apart.
    assert sign_up("10.0.0.2", "q@example.com", HTTP_X_FORWARDED_FOR="203.0.113.10") == 200


@pytest.mark.parametrize("remote, forwarded, hops, expected", [
    ("2001:db8::1", "", 0, "2001:db8::/64"),
    ("::ffff:192.0.2.1", "", 0, "192.0.2.1"),
    ("10.0.0.1", "1.1.1.1, 2.2.2.2, 3.3.3.3", 2, "2.2.2.2"),
    ("10.0.0.1", "not-an-ip", 1, "unknown"),
])
def test_the_client_network_is_derived_from_trusted_hops_only(settings, remote, forwarded, hops, expected):
    settings.NEWSDIGEST_TRUSTED_PROXY_COUNT = hops
    assert subscribers.client_network(remote, forwarded) == expected


@pytest.mark.parametrize("state", ["new", "pending", "active", "suppressed"])
def test_the_confirmation_mail_leaves_the_request_path_for_every_state(newsletter, state):
    if state != "new":
        status = {"pending": "pending", "active": "active", "suppressed": "bounced"}[state]
        person = Subscriber.objects.create(email="victim@example.com", status=status)
        Subscription.objects.create(subscriber=person, newsletter=newsletter,
                                    status="active" if state == "active" else "pending")
    with mock.patch.object(tasks.send_confirmation, "delay") as queued:
        assert sign_up("203.0.113.50") == 200
    assert mail.outbox == []  # nothing is sent while the request is answered
    assert queued.call_count == (1 if state in ("new", "pending") else 0)


def test_the_confirmation_task_sends_nothing_to_an_address_suppressed_meanwhile(newsletter):
    person = Subscriber.objects.create(email="victim@example.com", status="bounced")
    tasks.send_confirmation.delay(person.pk, newsletter.pk)
    assert mail.outbox == []
