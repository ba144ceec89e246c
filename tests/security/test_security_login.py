"""Issue 13.9: passwords cannot be guessed on the desk or admin login."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGINS = ["/desk/login/", "/admin/login/"]


@pytest.fixture(autouse=True)
def editor(settings, fast_passwords):
    settings.AXES_FAILURE_LIMIT = 5
    return User.objects.create_user("ed", "ed@example.com", "the-right-password", is_staff=True)


def attempt(url: str, password: str, ip: str = "198.51.100.1", username: str = "ed") -> int:
    return Client(REMOTE_ADDR=ip).post(url, {"username": username, "password": password}).status_code


@pytest.mark.parametrize("url", LOGINS)
def test_guessing_passwords_locks_the_login_even_for_the_right_password(url):
    assert [attempt(url, f"guess-{i}") for i in range(5)] == [200] * 4 + [429]
    assert attempt(url, "the-right-password") == 429


@pytest.mark.parametrize("url", LOGINS)
def test_guessing_one_account_from_many_addresses_locks_that_account(url):
    for i in range(5):
        attempt(url, f"guess-{i}", ip=f"203.0.113.{i}")
    assert attempt(url, "the-right-password", ip="192.0.2.200") == 429


def test_rotating_ipv6_addresses_in_one_64_counts_as_one_client():
    for i in range(5):
        attempt("/desk/login/", "guess", ip=f"2001:db8:5:6::{i + 1:x}", username=f"nobody{i}")
    assert attempt("/desk/login/", "the-right-password", ip="2001:db8:5:6::99") == 429


def test_the_lockout_ends_after_the_cool_off():
    for i in range(5):
        attempt("/desk/login/", f"guess-{i}")
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert attempt("/desk/login/", "the-right-password") == 302


def test_a_few_typos_do_not_lock_anyone_out():
    for i in range(3):
        attempt("/desk/login/", f"typo-{i}")
    assert attempt("/desk/login/", "the-right-password") == 302
