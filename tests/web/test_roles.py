"""Each role lands on its own start page after login; a refusal names the role needed and links back."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def person(name: str, role: str | None) -> User:
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-password")
    call_command("setup_roles", *(["--assign", name, role] if role else []), stdout=io.StringIO())
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(("role", "landing"), [("editor", "/desk/"), ("ops", "/desk/ops/"), ("admin", "/admin/"),
                                               (None, "/archive/")])
def test_login_lands_each_role_on_its_start_page(role, landing):
    person("someone", role)
    client = Client()
    response = client.post(reverse("login"), {"username": "someone", "password": "a-long-password"}, follow=True)
    assert response.redirect_chain[-1][0] == landing
    assert response.status_code == 200


def test_a_superuser_lands_on_the_admin():
    User.objects.create_superuser("root", "root@example.com", "a-long-password")
    client = Client()
    response = client.post(reverse("login"), {"username": "root", "password": "a-long-password"})
    assert client.get(response["Location"])["Location"] == "/admin/"


def test_login_still_goes_where_it_was_asked_to():
    person("someone", "ops")
    response = Client().post(reverse("login"), {"username": "someone", "password": "a-long-password",
                                                "next": "/archive/"})
    assert response["Location"] == "/archive/"


@pytest.mark.parametrize(("role", "page", "needed", "back"), [("editor", "ops", "ops", "/desk/"),
                                                              ("ops", "desk", "editor", "/desk/ops/")])
def test_a_refusal_names_the_role_needed_and_links_back(role, page, needed, back):
    response = logged_in(person("someone", role)).get(reverse(page))
    assert response.status_code == 403
    html = response.content.decode()
    assert f"This page needs the <strong>{needed}</strong> role, and someone does not have it." in html
    assert f'<a class="button" href="{back}">Back to your start page</a>' in html


def test_the_admin_stylesheet_is_served_without_debug(client, settings):
    settings.DEBUG = False
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"body" in b"".join(response.streaming_content)
