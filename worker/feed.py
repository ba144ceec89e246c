"""Each newsletter's public archive as an Atom feed (Django's syndication framework)."""

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import format_html, format_html_join

from . import render as email_render
from .models import Digest, Newsletter

ENTRIES = 50


class ArchiveFeed(Feed):
    feed_type = Atom1Feed

    def get_object(self, request: HttpRequest, slug: str) -> Newsletter:
        newsletter = get_object_or_404(Newsletter, slug=slug)
        # Feed readers carry no session: only a public archive has a feed.
        if not newsletter.public_archive:
            raise Http404
        return newsletter

    def title(self, obj: Newsletter) -> str:
        return obj.name

    def subtitle(self, obj: Newsletter) -> str:
        return obj.description or f"Every issue of {obj.name}"

    def link(self, obj: Newsletter) -> str:
        return settings.SITE_URL + reverse("archive-newsletter", args=[obj.slug])

    def feed_url(self, obj: Newsletter) -> str:
        return settings.SITE_URL + reverse("archive-feed", args=[obj.slug])

    def items(self, obj: Newsletter):
        return (obj.digests.filter(status=Digest.Status.SENT).order_by("-sent_at", "-pk")
                .prefetch_related("items__summary", "items__article")[:ENTRIES])

    def item_title(self, item: Digest) -> str:
        return item.subject

    def item_description(self, item: Digest) -> str:
        headlines = format_html_join("", "<li>{}</li>", ((story.headline,) for story in item.items.all()))
        return format_html("<p>{}</p><ol>{}</ol>", item.intro, headlines) if item.intro else \
            format_html("<ol>{}</ol>", headlines)

    def item_link(self, item: Digest) -> str:
        return email_render.view_url(item)

    def item_pubdate(self, item: Digest):
        return item.sent_at

    def item_updateddate(self, item: Digest):
        return item.sent_at


urlpatterns = [path("archive/<slug:slug>/feed.atom", ArchiveFeed(), name="archive-feed")]
