"""The subscriber's pages: subscribe (double opt-in, also as a JSON API), confirm, unsubscribe (RFC 8058
one-click), preferences, view in browser. The rules themselves are worker.subscribers'."""

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from .. import render as email_render
from .. import subscribers, tokens
from ..models import Digest, Newsletter, Subscriber, Subscription
from . import security

# Same words whether the address is new, pending, active or suppressed: the page must not
# tell a stranger who is on the list.
CHECK_INBOX = "Thanks! If this address can receive the newsletter, a confirmation link is on its way."
HONEYPOT = "website"  # hidden from people by CSS; bots fill every field


def _signup(request: HttpRequest, newsletter: Newsletter, data) -> tuple[int, str]:
    """(HTTP status, message) for one sign-up attempt from the form or the JSON API."""
    network = subscribers.client_network(request.META.get("REMOTE_ADDR", ""),
                                         request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if not subscribers.allow_signup_from(network):
        return 429, "Too many sign-ups from your network; try again later."
    if data.get(HONEYPOT):
        return 200, CHECK_INBOX
    try:
        subscribers.subscribe(newsletter, str(data.get("email", "")), str(data.get("name", "")),
                              str(data.get("timezone", "")))
    except subscribers.InvalidSubscriber as exc:
        return 400, str(exc)
    return 200, CHECK_INBOX


@require_http_methods(["GET", "POST"])
def subscribe(request: HttpRequest, slug: str) -> HttpResponse:
    newsletter = get_object_or_404(Newsletter, slug=slug)
    context = {"newsletter": newsletter, "honeypot": HONEYPOT}
    if request.method == "GET":
        return render(request, "pages/subscribe.html", context)
    status, message = _signup(request, newsletter, request.POST)
    context |= {"message": message, "done": status == 200, "form": request.POST}
    return render(request, "pages/subscribe.html", context, status=status)


@csrf_exempt  # a JSON API for sign-up forms on other sites; rate limit + double opt-in stand in for CSRF
@require_POST
def subscribe_api(request: HttpRequest, slug: str) -> JsonResponse:
    newsletter = get_object_or_404(Newsletter, slug=slug)
    try:
        data = security.parse_json_object(request.body)
    except security.BadJSON as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    status, message = _signup(request, newsletter, data)
    return JsonResponse({"ok": True, "message": message} if status == 200 else {"error": message}, status=status)


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners fetch links); the POST confirms."""
    try:
        subscription = subscribers.subscription_for_confirm_token(token)
    except tokens.ExpiredToken:
        newsletter = _newsletter_of_expired(token)
        return render(request, "pages/confirm.html", {"expired": True, "newsletter": newsletter}, status=410)
    except (tokens.BadToken, Subscription.DoesNotExist):
        return render(request, "pages/confirm.html", {"invalid": True}, status=404)
    if request.method == "POST":
        subscription = subscribers.confirm(token)
        return render(request, "pages/confirm.html", {"subscription": subscription, "done": True})
    return render(request, "pages/confirm.html", {"subscription": subscription})


def _newsletter_of_expired(token: str) -> Newsletter | None:
    try:
        data = tokens.loads(tokens.Purpose.CONFIRM, token)
    except tokens.BadToken:
        return None
    return Newsletter.objects.filter(pk=data.get("n")).first()


@csrf_exempt  # RFC 8058: mail providers POST here without a session or CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscription = subscribers.subscription_for_token(token)
    except (tokens.BadToken, Subscription.DoesNotExist):
        return render(request, "pages/unsubscribe.html", {"invalid": True}, status=404)
    # GET never unsubscribes: link scanners fetch every URL in a message.
    if request.method == "POST":
        subscription = subscribers.unsubscribe(token)
        return render(request, "pages/unsubscribe.html", {"subscription": subscription, "done": True})
    return render(request, "pages/unsubscribe.html", {"subscription": subscription, "token": token})


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        data = tokens.loads(tokens.Purpose.PREFERENCES, token)
        subscriber = Subscriber.objects.get(pk=data["s"])
    except (tokens.BadToken, Subscriber.DoesNotExist):
        return render(request, "pages/preferences.html", {"invalid": True}, status=404)
    saved, error = False, ""
    if request.method == "POST":
        try:
            subscribers.set_preferences(
                subscriber, fmt=request.POST.get("format", subscriber.format),
                send_time=request.POST.get("send_time", ""), paused=request.POST.get("paused") == "on",
                newsletter_ids={int(n) for n in request.POST.getlist("newsletter") if n.isdigit()})
            saved = True
        except subscribers.InvalidSubscriber as exc:
            error = str(exc)
        subscriber.refresh_from_db()
    subscriptions = subscriber.subscriptions.select_related("newsletter").order_by("newsletter__name")
    return render(request, "pages/preferences.html", {
        "subscriber": subscriber, "subscriptions": subscriptions, "saved": saved, "error": error,
        "formats": Subscriber.Format.choices,
    }, status=400 if error else 200)


def digest_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The "view in browser" copy. Sent digests of public newsletters are public; the rest is staff-only."""
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    public = digest.status == Digest.Status.SENT and digest.newsletter.public_archive
    if not public:
        if not (request.user.is_authenticated and request.user.is_staff):
            raise Http404
    rendered = email_render.for_archive(email_render.ensure_rendered(digest))
    return HttpResponse(rendered.html)
