"""Sign-up: double opt-in, expiring links, validation, rate limit, honeypot, no address leaks."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from tests.helpers.processes import free_port
from worker import render, subscribers
from worker.models import Newsletter, Subscriber, Subscription


@pytest.fixture
def newsletter():
    return Newsletter.objects.create(name="Morning Brief", slug="brief", from_email="brief@news.example")


@pytest.fixture
def client():
    # A fresh client IP per test: the per-IP bucket lives for the whole process.
    return Client(REMOTE_ADDR=f"10.0.{free_port() % 250}.{free_port() % 250}")


def sign_up(client, email="Ada@Example.COM", **extra):
    return client.post("/subscribe/brief/", {"email": email, "name": "Ada", "timezone": "Europe/Paris", **extra})


def confirm_link(message) -> str:
    return re.search(r"http://\S+(/confirm/\S+)", message.body).group(1)


@pytest.mark.django_db
def test_signing_up_mails_a_link_and_changes_nothing_until_confirmed(client, newsletter):
    response = sign_up(client)
    assert response.status_code == 200 and "confirmation link is on its way" in response.content.decode()
    person = Subscriber.objects.get()
    assert (person.email, person.status, person.timezone) == ("Ada@example.com", "pending", "Europe/Paris")
    assert mail.outbox[0].to == ["Ada@example.com"]
    link = confirm_link(mail.outbox[0])
    assert client.get(link).status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING  # a GET (link scanner) confirms nothing
    assert client.post(link).status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE


@pytest.mark.django_db
def test_signing_up_twice_is_idempotent(client, newsletter):
    sign_up(client)
    sign_up(client, email="ada@example.com")
    assert Subscriber.objects.count() == 1 and Subscription.objects.count() == 1


@pytest.mark.django_db
def test_the_answer_is_the_same_for_new_and_known_addresses(client, newsletter):
    Subscriber.objects.create(email="known@example.com", status=Subscriber.Status.BOUNCED)
    new = sign_up(client, email="new@example.com")
    known = sign_up(client, email="known@example.com")
    assert (new.status_code, new.content) == (known.status_code, known.content)


@pytest.mark.django_db
def test_a_bounced_address_is_never_reactivated(client, newsletter):
    Subscriber.objects.create(email="gone@example.com", status=Subscriber.Status.BOUNCED)
    sign_up(client, email="gone@example.com")
    assert not mail.outbox
    assert Subscriber.objects.get().status == Subscriber.Status.BOUNCED


@pytest.mark.django_db
def test_an_invalid_address_is_refused_with_a_reason(client, newsletter):
    response = sign_up(client, email="not-an-address")
    assert response.status_code == 400 and "invalid email address" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_a_name_with_a_line_break_is_refused(client, newsletter):
    assert sign_up(client, name="Ada\r\nBcc: x@y.z").status_code == 400


@pytest.mark.django_db
def test_the_honeypot_field_drops_the_sign_up_silently(client, newsletter):
    response = sign_up(client, website="http://spam.example")
    assert response.status_code == 200
    assert not Subscriber.objects.exists() and not mail.outbox


@pytest.mark.django_db
def test_sign_ups_are_rate_limited_per_client_ip(client, newsletter, settings):
    settings.NEWSDIGEST_SUBSCRIBE_PER_IP_PER_HOUR = 2
    subscribers._ip_bucket.cache_clear()
    assert [sign_up(client, email=f"p{i}@example.com").status_code for i in range(3)] == [200, 200, 429]
    subscribers._ip_bucket.cache_clear()


@pytest.mark.django_db
def test_the_json_endpoint_signs_up_without_csrf(newsletter):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.9.9.9")
    response = client.post("/api/subscribe/brief", json.dumps({"email": "bob@example.com"}),
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["ok"]
    assert Subscriber.objects.get().email == "bob@example.com"


@pytest.mark.django_db
def test_the_json_endpoint_rejects_a_non_object(newsletter, client):
    response = client.post("/api/subscribe/brief", "[1]", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_an_expired_confirmation_link_does_nothing(client, newsletter, settings):
    settings.NEWSDIGEST_CONFIRM_MAX_AGE = 3600
    sign_up(client)
    link = confirm_link(mail.outbox[0])
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        response = client.post(link)
    assert response.status_code == 410 and "Subscribe again" in response.content.decode()
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


@pytest.mark.django_db
def test_a_tampered_confirmation_link_is_refused(client, newsletter):
    sign_up(client)
    assert client.post(confirm_link(mail.outbox[0]) + "x").status_code == 404


@pytest.mark.django_db
def test_preferences_set_send_time_and_pause(client, newsletter):
    person = Subscriber.objects.create(email="p@example.com", status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=person, newsletter=newsletter, status=Subscription.Status.ACTIVE)
    url = render.preferences_url(person).removeprefix("http://localhost:8000")
    response = client.post(url, {"format": "text", "send_time": "06:30", "paused": "on",
                                 "newsletter": [str(newsletter.pk)]})
    assert response.status_code == 200
    person.refresh_from_db()
    assert (person.format, person.send_time.isoformat(), person.paused) == ("text", "06:30:00", True)


@pytest.mark.django_db
def test_preferences_refuse_a_malformed_send_time(client, newsletter):
    person = Subscriber.objects.create(email="p@example.com", status=Subscriber.Status.ACTIVE)
    url = render.preferences_url(person).removeprefix("http://localhost:8000")
    assert client.post(url, {"format": "html", "send_time": "25:99"}).status_code == 400


# --- CSV ---------------------------------------------------------------------------------


def import_csv(tmp_path, text: str, *flags: str) -> tuple[str, str]:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    out, err = StringIO(), StringIO()
    call_command("subscribers", "import", str(path), "--newsletter", "brief", *flags, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_csv_import_reports_each_rejected_row(tmp_path, newsletter):
    out, err = import_csv(tmp_path, 'email,name\na@example.com,A\nbad,B\n"c@example.com","C\r\nX"\n'
                                    "A@example.com,dup\n", "--confirmed")
    assert "1 new subscribers" in out and "3 rejected" in out
    assert "line 3: rejected: invalid email address" in err
    assert "line 5: rejected: the name contains a line break" in err
    assert "line 6: rejected: duplicate of line 2" in err
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


@pytest.mark.django_db
def test_csv_import_never_reactivates_unsubscribed_or_complained(tmp_path, newsletter):
    gone = Subscriber.objects.create(email="gone@example.com", status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=gone, newsletter=newsletter, status=Subscription.Status.UNSUBSCRIBED)
    Subscriber.objects.create(email="angry@example.com", status=Subscriber.Status.COMPLAINED)
    out, _ = import_csv(tmp_path, "email\ngone@example.com\nangry@example.com\n", "--confirmed")
    assert "2 unchanged" in out
    assert Subscription.objects.get(subscriber=gone).status == Subscription.Status.UNSUBSCRIBED
    assert Subscriber.objects.get(email="angry@example.com").status == Subscriber.Status.COMPLAINED


@pytest.mark.django_db
def test_csv_import_without_confirmed_mails_confirmations(tmp_path, newsletter):
    import_csv(tmp_path, "email\nnew@example.com\n")
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    assert mail.outbox[0].to == ["new@example.com"]


@pytest.mark.django_db
def test_csv_import_needs_an_email_column(tmp_path, newsletter):
    with pytest.raises(CommandError, match="'email' column"):
        import_csv(tmp_path, "name\nA\n")


@pytest.mark.django_db
def test_csv_export_round_trips(tmp_path, newsletter):
    import_csv(tmp_path, "email,name,timezone\nz@example.com,Zed,Asia/Tokyo\n", "--confirmed")
    out = StringIO()
    call_command("subscribers", "export", "--newsletter", "brief", stdout=out, stderr=StringIO())
    assert out.getvalue().splitlines() == ["email,name,timezone,status,newsletters",
                                           "z@example.com,Zed,Asia/Tokyo,active,brief"]
