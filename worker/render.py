"""Render stage: MJML compiled once per digest; each recipient only gets placeholders replaced.

`render_digest` compiles the email with the markers of PLACEHOLDERS where per-recipient values go;
`personalise` swaps them in one pass. `render_for` is the reference path that compiles with the real
values: both must give the same bytes, which the tests check.

Content from articles, summaries, editors and newsletter settings is escaped for HTML, and any
text that looks like a marker is defused, so an article cannot smuggle in a placeholder.
"""

import html
import re
import textwrap
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from mjml import mjml2html

from . import clicks, tokens
from .models import Digest, DigestItem, Newsletter, Subscriber

DEFAULT_THEME = {
    "accent": "#1f4e79",
    "text": "#1a1a1a",
    "muted": "#5f6368",
    "background": "#eef0f3",
    "surface": "#ffffff",
    "header_text": "#ffffff",
    "font": "Helvetica, Arial, sans-serif",
    "heading_font": "Georgia, 'Times New Roman', serif",
    "logo_url": "",
    "dark_background": "#121416",
    "dark_surface": "#1d2023",
    "dark_text": "#e6e6e6",
    "dark_accent": "#8ab4f8",
}
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# Font stacks end up inside CSS and style attributes: letters, digits, spaces, commas, hyphens, single quotes.
_FONT = re.compile(r"[A-Za-z0-9 ,'-]{1,200}")

# Per-recipient parts are rendered as these markers and substituted after compiling,
# so the MJML compile runs once per digest, not once per subscriber.
PLACEHOLDERS = {
    "subscriber_name": "%%ND_NAME%%",
    "subscriber_email": "%%ND_EMAIL%%",
    "unsubscribe_url": "%%ND_UNSUBSCRIBE%%",
    "preferences_url": "%%ND_PREFERENCES%%",
    # Appended to tracked links: the delivery stamp (and reader, if kept); see worker/clicks.py.
    "click_query": "%%ND_CLICK%%",
}
_MARKER_PREFIX = "%%ND_"
_MARKERS = re.compile("|".join(re.escape(marker) for marker in PLACEHOLDERS.values()))
_BY_MARKER = {marker: key for key, marker in PLACEHOLDERS.items()}

WIDTH = 72
RULE = "-" * WIDTH


class ThemeError(ValueError):
    """A newsletter's theme holds a value that could break or inject into the email."""


@dataclass(frozen=True)
class RenderedEmail:
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Recipient:
    """What personalising (and addressing) a message reads of its subscriber; the send loop reads these
    columns with its claim instead of loading a Subscriber per row. A Subscriber serves as one too."""

    pk: int
    email: str
    name: str
    format: str


def theme_for(newsletter: Newsletter) -> dict[str, str]:
    """The newsletter's theme over the defaults, every value checked: a rebrand is data, never markup."""
    theme = newsletter.theme or {}
    if not isinstance(theme, dict):
        raise ThemeError(f"newsletter {newsletter.slug}: theme must be a JSON object, not {type(theme).__name__}")
    problems = []
    for key, value in theme.items():
        if key not in DEFAULT_THEME:
            problems.append(f"unknown key {key!r} (known: {', '.join(sorted(DEFAULT_THEME))})")
        elif not isinstance(value, str):
            problems.append(f"{key} must be a string")
        elif key == "logo_url":
            if value and not clicks.safe_url(value):
                problems.append(f"logo_url must be an http(s) URL without quotes or spaces, got {value!r}")
        elif "font" in key:
            if not _FONT.fullmatch(value):
                problems.append(f"{key} may hold letters, digits, spaces, commas, hyphens and ' only, got {value!r}")
        elif not _COLOUR.fullmatch(value):
            problems.append(f"{key} must be a #rgb or #rrggbb colour, got {value!r}")
    if problems:
        raise ThemeError(f"newsletter {newsletter.slug}: bad theme: " + "; ".join(problems))
    return {**DEFAULT_THEME, **theme}


def unsubscribe_token(subscriber: Subscriber | Recipient, newsletter: Newsletter) -> str:
    return tokens.dumps(tokens.Purpose.UNSUBSCRIBE, {"s": subscriber.pk, "n": newsletter.pk})


def preferences_token(subscriber: Subscriber | Recipient) -> str:
    return tokens.dumps(tokens.Purpose.PREFERENCES, {"s": subscriber.pk})


def unsubscribe_url(subscriber: Subscriber | Recipient, newsletter: Newsletter, token: str | None = None) -> str:
    """`token`: one already signed for this subscriber and newsletter, so a message signs it once."""
    return settings.SITE_URL + reverse("unsubscribe", args=[token or unsubscribe_token(subscriber, newsletter)])


def preferences_url(subscriber: Subscriber | Recipient) -> str:
    return settings.SITE_URL + reverse("preferences", args=[preferences_token(subscriber)])


def view_url(digest: Digest) -> str:
    return settings.SITE_URL + reverse("digest-view", args=[digest.pk])


def one_line(value: str) -> str:
    """Collapse CR/LF and runs of whitespace: such a value can break neither a header nor a line."""
    return " ".join(str(value or "").split())


def _defuse(text: str) -> str:
    """Plain-text content can't hold a marker: a zero-width non-joiner splits any '%%ND_'."""
    return text.replace(_MARKER_PREFIX, "%\u200c%ND_")


def _h(text: str) -> SafeString:
    """Content for the MJML source: escaped, and '%' of a would-be marker as an entity (same glyph)."""
    return SafeString(html.escape(text).replace(_MARKER_PREFIX, "&#37;%ND_"))


def _wrap(text: str, indent: str = "", first: str | None = None) -> str:
    paragraphs = [one_line(p) for p in str(text).split("\n") if p.strip()]
    wrapped = []
    for i, paragraph in enumerate(paragraphs):
        lead = first if (first is not None and i == 0) else indent
        wrapped.append(textwrap.fill(paragraph, width=WIDTH, initial_indent=lead, subsequent_indent=indent,
                                     break_long_words=False, break_on_hyphens=False))
    return "\n\n".join(wrapped)


def newsletter_zone(newsletter: Newsletter) -> ZoneInfo:
    """The newsletter's zone for display; a bad name shows UTC rather than failing a render."""
    try:
        return ZoneInfo(newsletter.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local(moment: datetime | None, zone) -> datetime | None:
    return timezone.localtime(moment, zone) if moment is not None else None


def _actors(item: DigestItem) -> list[dict[str, str]]:
    """Editors' overrides are free JSON: keep the entries that name someone, as strings."""
    actors = []
    for actor in item.key_actors or []:
        if isinstance(actor, dict) and one_line(actor.get("name", "")):
            actors.append({key: one_line(actor.get(key, "")) for key in ("name", "role", "action")})
    return actors


def _stories(digest: Digest, zone) -> tuple[list[dict], list[str]]:
    """Stories as plain strings, plus the numbered link references of the text part."""
    stories, links = [], []
    tracking = digest.newsletter.click_tracking

    def ref(url: str) -> int:
        links.append(url)
        return len(links)

    items = digest.items.select_related("article__source", "article__story", "summary").order_by("position", "pk")
    for number, item in enumerate(items, start=1):
        article = item.article
        bare = clicks.safe_url(article.canonical_url or article.url)
        # Tracked links go through the signed redirect; names shown to readers come from the bare URL.
        url = clicks.tracked_url(item.pk, bare) if bare and tracking else bare
        also_in = []
        if article.story_id:
            for other in article.story.articles.exclude(pk=article.pk).select_related("source").order_by("pk"):
                if other_url := clicks.safe_url(other.canonical_url or other.url):
                    name = other.source.name if other.source else urlsplit(other_url).netloc
                    also_in.append({"name": one_line(name),
                                    "url": clicks.tracked_url(item.pk, other_url) if tracking else other_url})
        stories.append({
            "number": number,
            "headline": one_line(item.headline),
            "url": url,
            "ref": ref(url) if url else None,
            "source": one_line(article.source.name if article.source else (urlsplit(bare).netloc if bare else "")),
            "when": f"{local.day} {local:%b, %H:%M}" if (local := _local(article.published_at, zone)) else "",
            "summary": item.summary_text.strip(),
            "why_it_matters": item.why_it_matters.strip(),
            "actors": _actors(item),
            "also_in": [{**other, "ref": ref(other["url"])} for other in also_in],
        })
    return stories, links


def _people(stories: list[dict]) -> list[dict]:
    """Everyone named across the issue once, with the first role given and the stories they appear in."""
    people: dict[str, dict] = {}
    for story in stories:
        for actor in story["actors"]:
            person = people.setdefault(actor["name"].casefold(), {"name": actor["name"], "role": "", "stories": []})
            person["role"] = person["role"] or actor["role"]
            if story["number"] not in person["stories"]:
                person["stories"].append(story["number"])
    return sorted(people.values(), key=lambda p: (p["stories"][0], p["name"].casefold()))


def _text_context(newsletter: Newsletter, digest: Digest, stories: list[dict], people: list[dict],
                  links: list[str], date: str, click_query: str) -> dict:
    """The plain-text part is written for reading as text: wrapped, numbered, links as references."""
    text_stories = []
    for story in stories:
        meta = " · ".join(part for part in (story["source"], story["when"]) if part)
        lines = [_wrap(f"{story['number']}. {story['headline']}", indent="   ", first="")]
        if meta or story["ref"]:
            lines.append("   " + " ".join(p for p in (meta, f"[{story['ref']}]" if story["ref"] else "") if p))
        body = [_wrap(story["summary"], indent="   ")] if story["summary"] else []
        if story["why_it_matters"]:
            body.append(_wrap(f"Why it matters: {story['why_it_matters']}", indent="   "))
        if story["actors"]:
            actors = ["   Key actors:"]
            for actor in story["actors"]:
                role = f" ({actor['role']})" if actor["role"] else ""
                action = f": {actor['action']}" if actor["action"] else ""
                actors.append(_wrap(f"{actor['name']}{role}{action}", indent="     ", first="   - "))
            body.append("\n".join(actors))
        if story["also_in"]:
            body.append(_wrap("Also in: " + ", ".join(f"{o['name']} [{o['ref']}]" for o in story["also_in"]),
                              indent="   "))
        text_stories.append(_defuse("\n".join(lines) + ("\n\n" + "\n\n".join(body) if body else "")))
    people_lines = []
    for person in people:
        role = f" ({person['role']})" if person["role"] else ""
        numbers = ", ".join(str(n) for n in person["stories"])
        people_lines.append(_defuse(_wrap(f"{person['name']}{role}: story {numbers}", indent="  ", first="- ")))
    return {
        "title": _defuse(one_line(newsletter.name).upper()),
        "date": date,
        "intro": _defuse(_wrap(digest.intro)),
        "contents": [_defuse(_wrap(f"{s['number']:>2}. {s['headline']}", indent="    ")) for s in stories],
        "stories": text_stories,
        "people": people_lines,
        "links": [f"[{i}] {_defuse(link)}{click_query}" for i, link in enumerate(links, start=1)],
        "why": _defuse(_wrap(f"You get {one_line(newsletter.name)} because you subscribed to it with this address:")),
        "postal": _defuse(one_line(", ".join(p for p in (newsletter.sender_name, newsletter.postal_address) if p))
                          if newsletter.postal_address else ""),
        "rule": RULE,
    }


def _paragraphs(text: str) -> SafeString:
    """Blank-line separated paragraphs as <p>; single line breaks kept as <br />."""
    blocks = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    return SafeString("".join(
        '<p style="margin:0 0 12px">' + "<br />".join(_h(one_line(line)) for line in block.split("\n")) + "</p>"
        for block in blocks))


def _html_context(newsletter: Newsletter, digest: Digest, theme: dict, stories: list[dict],
                  people: list[dict], date: str) -> dict:
    def escaped(value):
        if isinstance(value, str):
            return _h(value)
        if isinstance(value, list):
            return [escaped(v) for v in value]
        if isinstance(value, dict):
            return {k: escaped(v) for k, v in value.items()}
        return value

    return {
        "name": _h(one_line(newsletter.name)),
        "subject": _h(one_line(digest.subject)),
        "date": date,
        "intro": _paragraphs(digest.intro),
        "stories": [{**escaped(s), "summary": _paragraphs(s["summary"])} for s in stories],
        "people": escaped(people),
        "preview_text": _h(" · ".join(s["headline"] for s in stories[:3])),
        "postal": _h(one_line(", ".join(p for p in (newsletter.sender_name, newsletter.postal_address) if p))
                     if newsletter.postal_address else ""),
        "theme": theme,
    }


def _render(digest: Digest, values: dict[str, str]) -> RenderedEmail:
    newsletter = digest.newsletter
    theme = theme_for(newsletter)
    zone = newsletter_zone(newsletter)
    stories, links = _stories(digest, zone)
    people = _people(stories)
    end = _local(digest.period_end, zone)
    date = f"{end:%A}, {end.day} {end:%B %Y}"
    # Bare links of an untracked newsletter get no query appended.
    common = {"view_url": view_url(digest), **values,
              "click_query": values["click_query"] if newsletter.click_tracking else ""}
    mjml_source = render_to_string(
        "email/digest.mjml", {**_html_context(newsletter, digest, theme, stories, people, date), **common})
    text = render_to_string("email/digest.txt", {
        **_text_context(newsletter, digest, stories, people, links, date, common["click_query"]), **common})
    return RenderedEmail(html=mjml2html(mjml_source), text=text)


def render_digest(digest: Digest) -> RenderedEmail:
    """The digest's email with per-recipient placeholders still in it."""
    return _render(digest, PLACEHOLDERS)


def render_for(digest: Digest, subscriber: Subscriber, sent_at: datetime | None = None) -> RenderedEmail:
    """Reference path: compile the MJML with this subscriber's real values (one compile per recipient).

    Too slow for sending; it exists to prove `personalise(render_digest(d), d, s)` gives the same bytes.
    """
    return _render(digest, subscriber_values(digest, subscriber, sent_at))


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


def subscriber_values(digest: Digest, subscriber: Subscriber | Recipient, sent_at: datetime | None = None, *,
                      unsubscribe_token: str | None = None) -> dict[str, str]:
    """The placeholders' values for one recipient; `unsubscribe_token`, when the caller has already signed
    it (the message's List-Unsubscribe headers carry the same one), is not signed again."""
    newsletter = digest.newsletter
    return {
        "subscriber_name": one_line(subscriber.name) or "there",
        "subscriber_email": one_line(subscriber.email),
        "unsubscribe_url": unsubscribe_url(subscriber, newsletter, unsubscribe_token),
        "preferences_url": preferences_url(subscriber),
        "click_query": clicks.click_query(newsletter.click_tracking, sent_at, subscriber, newsletter.click_history),
    }


def personalise(rendered: RenderedEmail, digest: Digest, subscriber: Subscriber | Recipient,
                sent_at: datetime | None = None) -> RenderedEmail:
    """`sent_at` (the delivery moment) lets the click counter tell scanners' instant fetches from readers."""
    return substitute(rendered, subscriber_values(digest, subscriber, sent_at))


def for_archive(rendered: RenderedEmail) -> RenderedEmail:
    """The browser copy carries nobody's address or tokens."""
    home = settings.SITE_URL + "/"
    return substitute(rendered, {"subscriber_name": "reader", "subscriber_email": "a subscriber",
                                 "unsubscribe_url": home, "preferences_url": home, "click_query": ""})


def substitute(rendered: RenderedEmail, values: dict[str, str]) -> RenderedEmail:
    """The markers replaced by `values` (`subscriber_values`' keys), one regex pass per part, so a substituted
    value is never scanned for markers again."""
    escaped = {marker: html.escape(values[key]) for marker, key in _BY_MARKER.items()}
    raw = {marker: values[key] for marker, key in _BY_MARKER.items()}
    return RenderedEmail(html=_MARKERS.sub(lambda m: escaped[m.group()], rendered.html),
                         text=_MARKERS.sub(lambda m: raw[m.group()], rendered.text))
