"""The desk and the ops console in headless Chromium against a live server.

Tasks run eagerly in tests, so a send started from the console finishes inside the request. The
live progress (JS polling, no reload) is therefore shown on a second digest whose rows are queued
as if busy workers held them: the test marks rows sent behind the page's back and watches the
numbers move, then pauses and resumes it from the console (resume sends the rest, eagerly).
The reader flow (subscribe, confirm from the mailed link, preferences, unsubscribe) runs on the same server.
"""

import re

import pytest
from django.utils import timezone

from tests.helpers.factories import make_digest
from tests.helpers.processes import wait_for
from tests.web.browsing import CHROMIUM, person, shoot
from worker import deliver, render
from worker.models import Delivery, Digest, Subscriber, Subscription

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless chromium is not installed at /usr/bin/chromium"),
    pytest.mark.usefixtures("fast_passwords"),
]


def log_in(page, live_server, username: str, then: str) -> None:
    page.goto(live_server.url + then)
    assert "/desk/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + then)


def headlines(page) -> list[str]:
    return [h.strip() for h in page.locator(".story .headline").all_inner_texts()]


def test_an_editor_edits_reorders_approves_and_sends_a_test(page, live_server, smtp):
    person("editor")
    digest = make_digest(stories=3)
    log_in(page, live_server, "editor", "/desk/")
    page.click(f"text={digest.subject}")
    page.wait_for_url(f"**/desk/digests/{digest.pk}/")
    email = page.frame_locator("#email")
    email.locator("h2", has_text="Riverton opens the rebuilt Harbour Bridge").wait_for()
    shoot(page, "draft-desktop.png")

    page.click("text=Phone 375px")
    assert page.eval_on_selector("#email", "e => e.getBoundingClientRect().width") == 375
    shoot(page, "draft-phone-preview.png")
    page.click("text=Text")
    assert "Harbour Bridge" in page.inner_text("#text")
    page.click("text=Desktop 600px")
    assert page.eval_on_selector("#email", "e => e.getBoundingClientRect().width") == 600

    first = page.locator(".story").first
    first.locator("input[name=headline]").fill("Harbour Bridge reopens to lorries and bikes")
    first.locator("button.save").click()
    page.wait_for_selector(".messages >> text=edited story: saved")
    email.locator("h2", has_text="Harbour Bridge reopens to lorries and bikes").wait_for()

    page.locator(".story").first.locator("button.move-down").click()
    page.wait_for_selector(".messages >> text=moved story: saved")
    assert headlines(page)[:2] == ["Late-stage trial finds new malaria vaccine cuts infections by 70 percent",
                                   "Harbour Bridge reopens to lorries and bikes"]

    page.click("#send-test")
    page.wait_for_selector(".messages >> text=test message sent to editor@example.com")
    wait_for(lambda: smtp.messages, 10, what="the test message")
    assert smtp.messages[0]["To"] == "editor@example.com"
    assert "Harbour Bridge reopens to lorries and bikes" in smtp.messages[0].get_body(("html",)).get_content()

    page.click("#approve")
    page.wait_for_selector("h1 .badge.approved")
    trail = page.inner_text("#trail")
    assert all(action in trail for action in ("edited story", "moved story", "test sent", "approved"))

    page.goto(live_server.url + f"/desk/ops/digests/{digest.pk}/")
    assert page.inner_text("#refusal") == "This page needs the ops role, and editor does not have it."
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.APPROVED

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + f"/desk/digests/{digest.pk}/")
    shoot(page, "draft-phone.png")


def _subscribe(digest: Digest, count: int) -> None:
    for i in range(count):
        reader = Subscriber.objects.create(email=f"reader{i}.{digest.pk}@example.com", status=Subscriber.Status.ACTIVE)
        Subscription.objects.create(subscriber=reader, newsletter=digest.newsletter, status=Subscription.Status.ACTIVE)


def test_ops_start_a_send_watch_progress_and_pause_and_resume(page, live_server):
    person("ops")
    first = make_digest(stories=2)
    _subscribe(first, 4)
    Digest.objects.filter(pk=first.pk).update(status=Digest.Status.APPROVED)
    log_in(page, live_server, "ops", "/desk/ops/")
    page.click(f"text={first.subject}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#send")
    page.wait_for_selector("#status.sent")
    assert page.inner_text("#percent") == "100%" and page.inner_text("#sent") == "5"
    shoot(page, "ops-sent.png")

    second = make_digest(stories=2, slug="second", name="Second Daily")
    _subscribe(second, 3)
    Digest.objects.filter(pk=second.pk).update(status=Digest.Status.APPROVED)
    deliver.begin_send(second.pk)
    deliver.fan_out(second.pk)  # rows queued; their batches are not published, as if workers were busy
    page.goto(live_server.url + f"/desk/ops/digests/{second.pk}/")
    assert page.inner_text("#remaining") == "4"
    held = list(Delivery.objects.filter(digest=second).values_list("pk", flat=True)[:2])
    Delivery.objects.filter(pk__in=held).update(status=Delivery.Status.SENT, sent_at=timezone.now())
    page.wait_for_function("document.getElementById('sent').textContent === '2'")  # polled, no reload
    assert page.inner_text("#percent") == "50%"

    page.click("#pause")
    page.wait_for_selector("#status.paused")
    assert page.is_hidden("#pause") and page.is_visible("#resume")
    page.click("#resume")
    page.wait_for_function("document.getElementById('percent').textContent === '100%'")
    page.wait_for_selector("#status.sent")
    assert Delivery.objects.filter(digest=second, status=Delivery.Status.SENT).count() == 4
    history = page.inner_text("body")
    assert "paused" in history and "resumed" in history


def test_anonymous_visitors_see_nothing_private(page, live_server):
    digest = make_digest(stories=1)
    private = ("/desk/digests/{}/", "/desk/digests/{}/preview", "/desk/ops/digests/{}/")
    for path in (p.format(digest.pk) for p in private):
        page.goto(live_server.url + path)
        assert "/desk/login/" in page.url, path
        assert digest.subject not in page.content()
    response = page.request.get(live_server.url + f"/api/ops/digests/{digest.pk}/")
    assert response.status == 401
    page.goto(live_server.url + f"/digests/{digest.pk}/")
    assert digest.subject not in page.content()


def test_a_reader_subscribes_confirms_sets_preferences_and_unsubscribes(page, live_server, smtp, settings):
    settings.SITE_URL = live_server.url  # links in the mails point at this server
    newsletter = make_digest(stories=1).newsletter
    page.goto(live_server.url + f"/subscribe/{newsletter.slug}/")
    page.fill("input[name=email]", "reader@example.org")
    page.fill("input[name=name]", "Rea Der")
    page.click("button[type=submit]")
    page.wait_for_selector("[role=status]")

    wait_for(lambda: smtp.messages, 10, what="the confirmation mail")
    link = re.search(r"http://\S+/confirm/\S+", smtp.messages[0].get_content()).group()
    page.goto(link)
    page.click("text=Yes, send it to me")
    page.wait_for_selector("text=You are subscribed")
    reader = Subscriber.objects.get(email="reader@example.org")
    assert reader.status == Subscriber.Status.ACTIVE

    page.goto(render.preferences_url(reader))
    page.check("input[name=format][value=text]")
    page.fill("input[name=send_time]", "08:30")
    page.click("button[type=submit]")
    page.wait_for_selector("[role=status] >> text=Saved.")
    reader.refresh_from_db()
    assert (reader.format, reader.send_time.isoformat()) == ("text", "08:30:00")

    page.goto(render.unsubscribe_url(reader, newsletter))
    page.click("button[type=submit]")
    page.wait_for_selector("text=You are unsubscribed")
    assert reader.subscriptions.get().status == Subscription.Status.UNSUBSCRIBED
