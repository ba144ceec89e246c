"""Public pages: unsubscribe (RFC 8058 one-click), preferences, view in browser."""

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import render as email_render
from . import subscribers
from .models import Digest, Subscriber, Subscription


@csrf_exempt  # RFC 8058: mail providers POST here without a session or CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscription = subscribers.subscription_for_token(token)
    except (signing.BadSignature, Subscription.DoesNotExist):
        return render(request, "pages/unsubscribe.html", {"invalid": True}, status=404)
    # GET never unsubscribes: link scanners fetch every URL in a message.
    if request.method == "POST":
        subscription = subscribers.unsubscribe(token)
        return render(request, "pages/unsubscribe.html", {"subscription": subscription, "done": True})
    return render(request, "pages/unsubscribe.html", {"subscription": subscription, "token": token})


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        data = signing.loads(token, salt=email_render.PREFERENCES_SALT)
        subscriber = Subscriber.objects.get(pk=data["s"])
    except (signing.BadSignature, Subscriber.DoesNotExist):
        return render(request, "pages/preferences.html", {"invalid": True}, status=404)
    subscriptions = subscriber.subscriptions.select_related("newsletter").order_by("newsletter__name")
    saved = False
    if request.method == "POST":
        fmt = request.POST.get("format", subscriber.format)
        if fmt not in Subscriber.Format.values:
            return HttpResponseBadRequest("unknown format")
        Subscriber.objects.filter(pk=subscriber.pk).update(format=fmt)
        chosen = set(request.POST.getlist("newsletter"))
        for subscription in subscriptions:
            wanted = str(subscription.newsletter_id) in chosen
            if not wanted and subscription.status != Subscription.Status.UNSUBSCRIBED:
                subscribers.unsubscribe(email_render.unsubscribe_token(subscriber, subscription.newsletter))
            elif wanted and subscription.status == Subscription.Status.UNSUBSCRIBED:
                Subscription.objects.filter(pk=subscription.pk).update(
                    status=Subscription.Status.ACTIVE, unsubscribed_at=None)
        subscriber.refresh_from_db()
        saved = True
    return render(request, "pages/preferences.html", {
        "subscriber": subscriber, "subscriptions": subscriptions.all(), "saved": saved,
        "formats": Subscriber.Format.choices,
    })


def digest_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The "view in browser" copy. Sent digests of public newsletters are public; the rest is staff-only."""
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    public = digest.status == Digest.Status.SENT and digest.newsletter.public_archive
    if not public:
        if not (request.user.is_authenticated and request.user.is_staff):
            raise Http404
    rendered = email_render.for_archive(email_render.ensure_rendered(digest))
    return HttpResponse(rendered.html)
