"""Render stage: MJML compiled once per digest; each recipient only gets placeholders replaced."""

import html
import textwrap
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from mjml import mjml2html

from .models import Digest, Newsletter, Subscriber

DEFAULT_THEME = {
    "accent": "#1f4e79",
    "text": "#1a1a1a",
    "muted": "#6b6b6b",
    "background": "#f2f2f2",
    "font": "Helvetica, Arial, sans-serif",
    "logo_url": "",
}

# Per-recipient parts are rendered as these markers and substituted after compiling,
# so the MJML compile runs once per digest, not once per subscriber.
PLACEHOLDERS = {
    "subscriber_name": "%%ND_NAME%%",
    "subscriber_email": "%%ND_EMAIL%%",
    "unsubscribe_url": "%%ND_UNSUBSCRIBE%%",
    "preferences_url": "%%ND_PREFERENCES%%",
}

UNSUBSCRIBE_SALT = "newsdigest.unsubscribe"
PREFERENCES_SALT = "newsdigest.preferences"


@dataclass(frozen=True)
class RenderedEmail:
    html: str
    text: str


def safe_url(url: str) -> str:
    """Only http(s) links reach an email; anything else (javascript:, data:) becomes no link."""
    return url if urlsplit(url).scheme in {"http", "https"} else ""


def unsubscribe_token(subscriber: Subscriber, newsletter: Newsletter) -> str:
    return signing.dumps({"s": subscriber.pk, "n": newsletter.pk}, salt=UNSUBSCRIBE_SALT, compress=True)


def preferences_token(subscriber: Subscriber) -> str:
    return signing.dumps({"s": subscriber.pk}, salt=PREFERENCES_SALT, compress=True)


def unsubscribe_url(subscriber: Subscriber, newsletter: Newsletter) -> str:
    token = unsubscribe_token(subscriber, newsletter)
    return settings.SITE_URL + reverse("unsubscribe", args=[token])


def preferences_url(subscriber: Subscriber) -> str:
    return settings.SITE_URL + reverse("preferences", args=[preferences_token(subscriber)])


def view_url(digest: Digest) -> str:
    return settings.SITE_URL + reverse("digest-view", args=[digest.pk])


def _wrap(text: str, indent: str = "   ") -> str:
    return textwrap.fill(text, width=72, initial_indent=indent, subsequent_indent=indent)


def story_context(digest: Digest) -> tuple[list[dict], list[str]]:
    stories, links = [], []
    items = digest.items.select_related("article__source", "summary").order_by("position", "pk")
    for item in items:
        article = item.article
        url = safe_url(article.canonical_url or article.url)
        links.append(url or "(no link)")
        also_in = []
        if article.story_id:
            for other in article.story.articles.exclude(pk=article.pk).select_related("source"):
                if other_url := safe_url(other.canonical_url or other.url):
                    also_in.append({"name": other.source.name if other.source else urlsplit(other_url).netloc,
                                    "url": other_url})
        stories.append({
            "headline": item.headline,
            "url": url,
            "source": article.source.name if article.source else (urlsplit(url).netloc if url else ""),
            "published_at": article.published_at,
            "summary": item.summary_text,
            "summary_wrapped": _wrap(item.summary_text),
            "why_it_matters": item.why_it_matters,
            "why_wrapped": _wrap(f"Why it matters: {item.why_it_matters}") if item.why_it_matters else "",
            "actors": item.key_actors,
            "also_in": also_in,
            "ref": len(links),
        })
    return stories, links


def render_digest(digest: Digest) -> RenderedEmail:
    """The digest's email with per-recipient placeholders still in it."""
    newsletter = digest.newsletter
    stories, links = story_context(digest)
    context = {
        "digest": digest,
        "newsletter": newsletter,
        "theme": {**DEFAULT_THEME, **(newsletter.theme or {})},
        "stories": stories,
        "links": links,
        "view_url": view_url(digest),
        "preview_text": " · ".join(s["headline"] for s in stories[:3]),
        **PLACEHOLDERS,
    }
    mjml_source = render_to_string("email/digest.mjml", context)
    text = render_to_string("email/digest.txt", context)
    return RenderedEmail(html=mjml2html(mjml_source), text=text)


def ensure_rendered(digest: Digest) -> RenderedEmail:
    """Compile once and keep it on the digest; editors' changes clear `rendered_at`."""
    if digest.rendered_at is None or not digest.html_template:
        rendered = render_digest(digest)
        Digest.objects.filter(pk=digest.pk).update(
            html_template=rendered.html, text_template=rendered.text, rendered_at=timezone.now()
        )
        digest.html_template, digest.text_template = rendered.html, rendered.text
        digest.rendered_at = timezone.now()
    return RenderedEmail(html=digest.html_template, text=digest.text_template)


def personalise(rendered: RenderedEmail, digest: Digest, subscriber: Subscriber) -> RenderedEmail:
    return _substitute(rendered, {
        "subscriber_name": subscriber.name or "there",
        "subscriber_email": subscriber.email,
        "unsubscribe_url": unsubscribe_url(subscriber, digest.newsletter),
        "preferences_url": preferences_url(subscriber),
    })


def for_archive(rendered: RenderedEmail) -> RenderedEmail:
    """The browser copy carries nobody's address or tokens."""
    home = settings.SITE_URL + "/"
    return _substitute(rendered, {"subscriber_name": "reader", "subscriber_email": "a subscriber",
                                  "unsubscribe_url": home, "preferences_url": home})


def _substitute(rendered: RenderedEmail, values: dict[str, str]) -> RenderedEmail:
    html_out, text_out = rendered.html, rendered.text
    for key, marker in PLACEHOLDERS.items():
        html_out = html_out.replace(marker, html.escape(values[key]))
        text_out = text_out.replace(marker, values[key])
    return RenderedEmail(html=html_out, text=text_out)
