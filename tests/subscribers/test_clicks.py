"""Click redirects: signing, tampering, what the email carries, scanner filtering, the counts."""

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import signing

from tests.helpers.factories import make_digest
from worker import clicks, render, tokens
from worker.models import ClickCount, Digest, PendingClick, ReaderClick, Subscriber

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
REDIRECT = re.compile(re.escape(settings.SITE_URL) + r"/r/[^\s\"'<>?]+(?:\?[^\s\"'<>]*)?")


def sent_digest(stories: int = 3, **newsletter_fields) -> Digest:
    digest = make_digest(stories, **newsletter_fields)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT)
    digest.refresh_from_db()
    return digest


def reader(digest: Digest) -> Subscriber:
    return Subscriber.objects.get(subscriptions__newsletter=digest.newsletter)


def mailed(digest: Digest, sent_at: datetime | None = None) -> render.RenderedEmail:
    return render.personalise(render.render_digest(digest), digest, reader(digest), sent_at=sent_at)


def links_in(text: str) -> list[str]:
    return REDIRECT.findall(text.replace("&amp;", "&"))


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def hit(client, link: str, agent: str = BROWSER, method: str = "get", ip: str = "203.0.113.7"):
    return getattr(client, method)(path_of(link), HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)


def flushed(later: float = 60.0) -> clicks.FlushReport:
    return clicks.flush(now=time.time() + later)


def story_url(digest: Digest, position: int = 0) -> str:
    article = digest.items.get(position=position).article
    return article.canonical_url or article.url


# --- the links ---------------------------------------------------------------------------------------

def test_every_story_link_in_both_parts_goes_through_the_redirect():
    digest = sent_digest(3)
    email = mailed(digest)
    for item in digest.items.all():
        assert f'href="{item.article.url}' not in email.html
        assert item.article.url not in email.text
    assert len(links_in(email.html)) >= 6  # headline + "read the full story" per story
    assert len(links_in(email.text)) >= 3


def test_redirect_leads_to_the_link_that_was_mailed(client):
    digest = sent_digest(3)
    link = links_in(mailed(digest).text)[0]
    response = hit(client, link)
    assert response.status_code == 302
    assert response["Location"] == story_url(digest)


def test_redirect_of_an_also_in_link_leads_to_the_other_source(client):
    digest = sent_digest(3)
    other = "https://wire.example.org/story-1"
    [link] = [li for li in links_in(mailed(digest).html) if clicks.open_token(urlsplit(li).path[3:])[1] == other]
    assert hit(client, link)["Location"] == other


@pytest.mark.parametrize("damage", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
    lambda t: ("B" if t[1] != "B" else "C").join([t[0], t[2:]]),  # payload changed
    lambda t: t.split(":")[0],  # signature removed
    lambda t: "garbage",
])
def test_a_tampered_link_gets_a_400_page_not_a_redirect(client, damage):
    digest = sent_digest(1)
    token = urlsplit(links_in(mailed(digest).text)[0]).path.removeprefix("/r/")
    response = client.get(f"/r/{damage(token)}", HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 400
    assert "Location" not in response
    assert b"This link is not valid" in response.content


def test_a_link_signed_for_another_purpose_is_refused(client):
    # A validly signed value from elsewhere in the app (an unsubscribe token) is no click token.
    token = signing.Signer(salt=tokens.Purpose.UNSUBSCRIBE).sign_object([1, "https://evil.example.net/"])
    assert client.get(f"/r/{token}").status_code == 400


def test_a_signed_non_http_target_is_refused(client):
    token = tokens.sign_object(tokens.Purpose.CLICK, [1, "javascript:alert(1)"])
    assert client.get(f"/r/{token}").status_code == 400


def test_an_untracked_newsletter_mails_bare_links():
    digest = sent_digest(3, click_tracking=False)
    email = mailed(digest, sent_at=datetime.now(UTC))
    assert links_in(email.html) == links_in(email.text) == []
    assert f'href="{story_url(digest)}"' in email.html


def test_links_name_no_subscriber_unless_the_newsletter_keeps_history():
    digest = sent_digest(2)
    other = Subscriber.objects.create(email="bob@example.com", name="Bob", status=Subscriber.Status.ACTIVE)
    at = datetime.now(UTC)
    rendered = render.render_digest(digest)
    ada = render.personalise(rendered, digest, reader(digest), sent_at=at)
    bob = render.personalise(rendered, digest, other, sent_at=at)
    assert links_in(ada.html) == links_in(bob.html)
    assert all("r=" not in link for link in links_in(ada.html))


def test_render_once_still_gives_the_bytes_of_a_per_recipient_render_with_history_on():
    digest = sent_digest(3, click_history=True)
    at = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    cheap = mailed(digest, sent_at=at)
    reference = render.render_for(digest, reader(digest), sent_at=at)
    assert (cheap.html, cheap.text) == (reference.html, reference.text)
    assert all("r=" in link for link in links_in(cheap.text))


def test_the_archive_copy_carries_no_stamp_or_reader():
    digest = sent_digest(2, click_history=True)
    archived = render.for_archive(render.ensure_rendered(digest))
    assert links_in(archived.html) and all("?" not in link for link in links_in(archived.html))


# --- counting ----------------------------------------------------------------------------------------

def test_a_readers_click_is_counted_per_link_after_the_flush(client):
    digest = sent_digest(2)
    link = links_in(mailed(digest, sent_at=datetime.now(UTC) - timedelta(hours=1)).text)[0]
    hit(client, link)
    assert not ClickCount.objects.exists()  # nothing written on the request path but the buffer
    assert PendingClick.objects.count() == 1
    report = flushed()
    assert (report.counted, report.filtered) == (1, 0)
    count = ClickCount.objects.get()
    assert (count.item.position, count.url, count.clicks, count.filtered) == (0, story_url(digest), 1, 0)
    assert not PendingClick.objects.exists()


def test_a_second_flush_counts_nothing_twice(client):
    digest = sent_digest(1)
    hit(client, links_in(mailed(digest).text)[0])
    flushed()
    flushed()
    assert ClickCount.objects.get().clicks == 1


def test_clicks_on_a_drafts_preview_are_not_counted(client):
    digest = make_digest(1)
    hit(client, links_in(render.for_archive(render.ensure_rendered(digest)).html)[0])
    flushed()
    assert ClickCount.objects.get().clicks == 0


def test_no_reader_history_is_kept_by_default(client):
    digest = sent_digest(1)
    hit(client, links_in(mailed(digest).text)[0])
    flushed()
    assert ClickCount.objects.get().clicks == 1
    assert not ReaderClick.objects.exists()


def test_history_when_turned_on_is_deleted_with_the_subscriber(client):
    digest = sent_digest(1, click_history=True)
    hit(client, links_in(mailed(digest, sent_at=datetime.now(UTC) - timedelta(hours=1)).text)[0])
    flushed()
    assert ReaderClick.objects.get().subscriber == reader(digest)
    reader(digest).delete()
    assert not ReaderClick.objects.exists()
    assert ClickCount.objects.get().clicks == 1  # the anonymous count stays


def test_a_forged_reader_parameter_records_no_history(client):
    digest = sent_digest(1, click_history=True)
    link = links_in(render.for_archive(render.ensure_rendered(digest)).text)[0]
    hit(client, f"{link}?r={reader(digest).pk}")
    flushed()
    assert ClickCount.objects.get().clicks == 1
    assert not ReaderClick.objects.exists()


def test_the_buffer_works_on_redis_too(client, settings, redis_url):
    settings.REDIS_URL = redis_url
    clicks._redis_client().delete(clicks.BUFFER_KEY)
    digest = sent_digest(1)
    hit(client, links_in(mailed(digest).text)[0])
    assert not PendingClick.objects.exists()
    assert clicks.pending() == 1
    assert flushed().counted == 1
    assert clicks.pending() == 0
    assert ClickCount.objects.get().clicks == 1


def test_a_redirect_still_works_when_the_buffer_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    digest = sent_digest(1)
    assert hit(client, links_in(mailed(digest).text)[0]).status_code == 302


# --- scanners ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
    "Proofpoint URL Defense",
    "Mimecast Email Security",
    "python-requests/2.32.3",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "",
])
def test_a_known_scanner_agent_is_redirected_but_not_counted(client, agent):
    digest = sent_digest(1)
    assert hit(client, links_in(mailed(digest).text)[0], agent=agent).status_code == 302
    flushed()
    assert (ClickCount.objects.get().clicks, ClickCount.objects.get().filtered) == (0, 1)


def test_a_head_request_is_redirected_but_not_counted(client):
    digest = sent_digest(1)
    assert hit(client, links_in(mailed(digest).text)[0], method="head").status_code == 302
    flushed()
    assert ClickCount.objects.get().filtered == 1


def test_a_hit_seconds_after_delivery_is_a_scanners(client):
    digest = sent_digest(1)
    hit(client, links_in(mailed(digest, sent_at=datetime.now(UTC)).text)[0])
    flushed(later=3)
    assert (ClickCount.objects.get().clicks, ClickCount.objects.get().filtered) == (0, 1)


def test_a_hit_a_while_after_delivery_is_a_readers(client):
    digest = sent_digest(1)
    hit(client, links_in(mailed(digest, sent_at=datetime.now(UTC) - timedelta(minutes=5)).text)[0])
    flushed(later=3)
    assert ClickCount.objects.get().clicks == 1


def test_every_link_within_a_second_from_one_client_is_a_scanner(client):
    digest = sent_digest(3)
    for link in links_in(mailed(digest).text)[:3]:
        hit(client, link)
    hit(client, links_in(mailed(digest).text)[0], ip="198.51.100.9")  # another client: a reader
    flushed()
    assert sum(ClickCount.objects.values_list("filtered", flat=True)) == 3
    assert sum(ClickCount.objects.values_list("clicks", flat=True)) == 1


def test_hits_younger_than_the_burst_window_wait_for_the_next_flush(client):
    digest = sent_digest(1)
    hit(client, links_in(mailed(digest).text)[0])
    report = clicks.flush(now=time.time())
    assert (report.read, report.held) == (0, 1)
    assert flushed().counted == 1


def test_classify_spreads_a_burst_over_time_only_within_the_window():
    events = [{"i": i, "u": "https://a.example/", "t": 100.0 + 5 * i, "c": "x", "s": "", "w": None}
              for i in range(3)]
    assert clicks.classify(events, {0: 1, 1: 1, 2: 1}) == [None, None, None]
    burst = [{**e, "t": 100.0 + 0.3 * n} for n, e in enumerate(events)]
    assert clicks.classify(burst, {0: 1, 1: 1, 2: 1}) == ["burst"] * 3
