"""Each role in headless Chromium, from the bare login page to its first action; the subscriber pages
in the newsletter's theme at phone width."""

import re

import pytest
from django.contrib.auth.models import User

from tests.helpers.factories import make_digest
from tests.web.browsing import CHROMIUM, person, shoot
from worker import render
from worker.models import Digest, Subscriber, Subscription

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless chromium is not installed at /usr/bin/chromium"),
    pytest.mark.usefixtures("fast_passwords"),
]


def log_in_from_the_login_page(page, live_server, username: str) -> None:
    page.goto(live_server.url + "/desk/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_an_editor_lands_on_the_drafts_and_approves_one(page, live_server):
    person("editor")
    digest = make_digest(stories=2)
    log_in_from_the_login_page(page, live_server, "editor")
    assert page.url == live_server.url + "/desk/"
    page.click(f"text={digest.subject}")
    page.click("#approve")
    page.wait_for_selector("h1 .badge.approved")
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.APPROVED


def test_ops_land_on_the_console_and_send_an_approved_digest(page, live_server):
    person("ops")
    digest = make_digest(stories=2)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    log_in_from_the_login_page(page, live_server, "ops")
    assert page.url == live_server.url + "/desk/ops/"
    page.click(f"text={digest.subject}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#send")
    page.wait_for_selector("#status.sent")
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT


def test_an_admin_lands_on_the_admin_site_and_opens_the_users(page, live_server):
    person("admin")
    log_in_from_the_login_page(page, live_server, "admin")
    assert page.url == live_server.url + "/admin/"
    page.click("a[href='/admin/auth/user/']")
    page.wait_for_selector("#result_list")
    assert "admin" in page.inner_text("#result_list")
    # The admin's own stylesheet is served (WhiteNoise), so the page is styled.
    assert page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"


def test_an_editor_refused_the_console_is_told_which_role_and_gets_back(page, live_server):
    person("editor")
    log_in_from_the_login_page(page, live_server, "editor")
    page.goto(live_server.url + "/desk/ops/")
    assert page.inner_text("#refusal") == "This page needs the ops role, and editor does not have it."
    page.click("text=Back to your start page")
    page.wait_for_url(live_server.url + "/desk/")


def test_subscriber_pages_wear_the_newsletter_theme_and_fit_a_phone(page, live_server):
    newsletter = make_digest(stories=1).newsletter
    newsletter.theme = {"accent": "#7a1f5c"}
    newsletter.save()
    reader = Subscriber.objects.create(email="a.very.long.address.for.a.narrow.screen@example.org",
                                       status=Subscriber.Status.ACTIVE)
    subscription = Subscription.objects.create(subscriber=reader, newsletter=newsletter,
                                               status=Subscription.Status.PENDING)
    confirm = re.sub(r"^https?://[^/]+", "", render.preferences_url(reader)).replace("preferences", "confirm")
    pages = {"subscribe": f"/subscribe/{newsletter.slug}/",
             "preferences": re.sub(r"^https?://[^/]+", "", render.preferences_url(reader)),
             "unsubscribe": re.sub(r"^https?://[^/]+", "", render.unsubscribe_url(reader, newsletter)),
             "confirm-invalid": confirm}
    page.set_viewport_size({"width": 375, "height": 740})
    for name, path in pages.items():
        response = page.goto(live_server.url + path)
        assert response.status == (404 if name == "confirm-invalid" else 200), name
        shoot(page, f"reader-{name}-375.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
        assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16, name
        masthead = page.eval_on_selector("header.masthead", "e => getComputedStyle(e).backgroundColor")
        if name == "confirm-invalid":  # a bad link names no newsletter: the default look
            assert masthead == "rgb(31, 78, 121)"
            continue
        assert masthead == "rgb(122, 31, 92)", name
        assert newsletter.name in page.inner_text("header.masthead"), name
        button = page.locator("button[type=submit]").first
        assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(122, 31, 92)", name
        assert button.bounding_box()["height"] >= 44, name  # a thumb-sized target
    assert subscription.status == Subscription.Status.PENDING
    assert User.objects.count() == 0
