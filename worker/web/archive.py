"""The web archive: every newsletter a reader may see, each one's sent issues with their clicks, and
each public archive as an Atom feed (Django's syndication framework). A newsletter without a public
archive is shown to staff only."""

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_GET

from .. import clicks
from .. import render as email_render
from ..models import Digest, Newsletter

ENTRIES = 50  # in a feed


def _may_read(request: HttpRequest, newsletter: Newsletter) -> bool:
    return newsletter.public_archive or (request.user.is_authenticated and request.user.is_staff)


@require_GET
def archive(request: HttpRequest) -> HttpResponse:
    newsletters = [n for n in Newsletter.objects.order_by("name") if _may_read(request, n)]
    return render(request, "pages/desk/archive.html", {"newsletters": newsletters})


@require_GET
def archive_newsletter(request: HttpRequest, slug: str) -> HttpResponse:
    newsletter = get_object_or_404(Newsletter, slug=slug)
    if not _may_read(request, newsletter):
        if request.user.is_authenticated:
            raise Http404
        return redirect(f"{reverse('login')}?next={request.path}")
    digests = list(newsletter.digests.filter(status=Digest.Status.SENT).order_by("-sent_at", "-pk"))
    totals, top = clicks.digest_totals([d.pk for d in digests]), clicks.most_read([d.pk for d in digests])
    for digest in digests:
        digest.click_totals, digest.most_read = totals[digest.pk], top.get(digest.pk)
    return render(request, "pages/desk/archive_newsletter.html", {"newsletter": newsletter, "digests": digests})


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

