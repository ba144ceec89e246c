import re

import pytest
from django.conf import settings

from tests.helpers.factories import make_digest
from worker import render
from worker.models import Article, DigestItem, Subscriber

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(2)> </mj-text></mj-column>'


def subscriber(name: str = "Ada Lovelace", email: str = "ada@example.com") -> Subscriber:
    return Subscriber.objects.create(email=email, name=name, status=Subscriber.Status.ACTIVE)


@pytest.mark.parametrize("name", ["Ada Lovelace", '<b>Ada</b> & "Co" \'x\'', "Mallory\r\nBcc: evil@example.com", ""])
def test_personalised_email_is_byte_identical_to_a_per_recipient_render(name):
    digest = make_digest(3)
    reader = subscriber(name)
    cheap = render.personalise(render.render_digest(digest), digest, reader)
    reference = render.render_for(digest, reader)
    assert cheap.html == reference.html
    assert cheap.text == reference.text


def test_hostile_article_text_shows_as_text_and_keeps_the_layout():
    digest = make_digest(3)
    DigestItem.objects.filter(digest=digest, position=1).update(
        headline_override=HOSTILE, summary_override=HOSTILE, why_override=HOSTILE,
        actors_override=[{"name": HOSTILE, "role": HOSTILE, "action": HOSTILE}])
    digest.intro = HOSTILE
    html = render.render_digest(digest).html
    assert "<script" not in html and "<img src=x" not in html and "</mj-" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('class="nd-headline"') == 3


def test_article_carrying_a_placeholder_is_not_personalised():
    digest = make_digest(2)
    forged = "Click %%ND_UNSUBSCRIBE%% or %%ND_NAME%%"
    DigestItem.objects.filter(digest=digest, position=0).update(headline_override=forged, summary_override=forged)
    email = render.personalise(render.render_digest(digest), digest, subscriber("Ada"))
    unsubscribe = render.unsubscribe_url(Subscriber.objects.get(name="Ada"), digest.newsletter)
    assert email.html.count(unsubscribe) == 1 and email.text.count(unsubscribe) == 1
    assert "Click %\u200c%ND_UNSUBSCRIBE%% or %\u200c%ND_NAME%%" in email.text
    assert "Click &#37;%ND_UNSUBSCRIBE%% or &#37;%ND_NAME%%" in email.html


def test_subscriber_values_are_escaped_and_kept_on_one_line():
    digest = make_digest(1)
    email = render.personalise(render.render_digest(digest), digest, subscriber("<b>Eve</b>\r\nBcc: x@example.com"))
    assert "&lt;b&gt;Eve&lt;/b&gt; Bcc: x@example.com" in email.html
    assert "<b>Eve" not in email.html
    assert "Hi <b>Eve</b> Bcc: x@example.com," in email.text


def test_only_http_links_reach_the_email():
    digest = make_digest(2)
    Article.objects.filter(pk=digest.items.first().article_id).update(url="javascript:alert(1)", canonical_url="")
    rendered = render.render_digest(digest)
    assert "javascript:" not in rendered.html and "javascript:" not in rendered.text


def test_theme_rebrands_the_email_without_touching_the_template():
    digest = make_digest(2, theme={"accent": "#c0392b", "font": "Verdana, sans-serif",
                                   "logo_url": "https://cdn.example.com/logo.png"})
    html = render.render_digest(digest).html
    assert "#c0392b" in html and "Verdana, sans-serif" in html
    assert re.search(r'<img[^>]*alt="Newsdigest Demo Daily"[^>]*src="https://cdn.example.com/logo.png"', html)


@pytest.mark.parametrize("theme, complaint", [
    ({"accent": "red;} body{display:none"}, "accent must be a #rgb or #rrggbb colour"),
    ({"logo_url": 'javascript:alert(1)'}, "logo_url must be an http(s) URL"),
    ({"logo_url": 'https://x.example/a.png" onerror="alert(1)'}, "logo_url must be an http(s) URL"),
    ({"font": "Arial; } </style><script>"}, "font may hold"),
    ({"accnet": "#fff"}, "unknown key 'accnet'"),
])
def test_a_bad_theme_is_refused_with_a_clear_error(theme, complaint):
    digest = make_digest(1, theme=theme)
    with pytest.raises(render.ThemeError, match=re.escape(complaint)):
        render.render_digest(digest)


def test_text_part_is_numbered_wrapped_and_lists_links_as_references():
    # Bare links here, to read the references; tracked ones are tests/subscribers/test_clicks.py's.
    digest = make_digest(6, click_tracking=False)
    text = render.personalise(render.render_digest(digest), digest, subscriber()).text
    lines = text.splitlines()
    assert all(len(line) <= 72 for line in lines if "://" not in line)
    assert "2. Late-stage trial finds new malaria vaccine cuts infections by 70" in lines
    assert "   Health Desk · 25 Nov, 05:23 [2]" in lines
    assert "   Why it matters: If regulators approve it, the vaccine could reach" in lines
    assert "   - Dr Amina Okafor (lead investigator): presented the results" in lines
    assert "   Also in: Global Wire [3]" in lines
    assert "[3] https://wire.example.org/story-1" in lines
    assert f"Unsubscribe: {settings.SITE_URL}/u/" in text


def test_people_block_lists_each_actor_once_with_their_stories():
    digest = make_digest(6)
    rendered = render.render_digest(digest)
    assert "- Mayor Elena Ruiz (mayor of Riverton): story 1, 6" in rendered.text
    people = rendered.html.split("People and organisations in this issue")[1]
    assert people.count("Mayor Elena Ruiz") == 1
    assert '<a href="#story-1">1</a>, <a href="#story-6">6</a>' in people


def test_html_and_text_carry_the_same_content():
    digest = make_digest(6)
    rendered = render.render_digest(digest)
    for item in digest.items.all():
        for part in (item.headline, item.why_it_matters, *(a["action"] for a in item.key_actors)):
            assert part in " ".join(rendered.text.split())
            assert part.replace("'", "&#x27;") in rendered.html


def test_twelve_story_digest_stays_under_gmail_clipping_size():
    digest = make_digest(12)
    email = render.personalise(render.render_digest(digest), digest, subscriber())
    assert len(email.html.encode()) < 100_000
    assert 'max-width:600px' in email.html
