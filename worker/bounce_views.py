"""Ops console pages for bounces and complaints: the recent ones with their class and the server's
words, and un-suppressing an address (an audited operator decision). Same permission as the rest of
the ops console (worker.send_digest)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from . import bounces
from .models import Subscriber, SuppressionEvent

SEND = "worker.send_digest"
RECENT = 200
Kind = SuppressionEvent.Kind
SHOWN = [Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.POLICY_BOUNCE, Kind.COMPLAINT]


def _ops(view):
    return login_required(permission_required(SEND, raise_exception=True)(view))


@require_GET
@_ops
def recent(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind", "")
    events = (SuppressionEvent.objects.filter(kind__in=[kind] if kind in SHOWN else SHOWN)
              .select_related("subscriber", "digest").order_by("-created_at", "-pk"))[:RECENT]
    return render(request, "pages/desk/bounces.html", {
        "events": events, "kinds": SHOWN, "kind": kind,
        "suppressed": [Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED],
    })


@require_POST
@_ops
def unsuppress(request: HttpRequest) -> HttpResponse:
    try:
        messages.success(request, bounces.unsuppress(request.POST.get("email", ""), request.user))
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect("ops-bounces")


urlpatterns = [
    path("desk/ops/bounces/", recent, name="ops-bounces"),
    path("desk/ops/bounces/unsuppress", unsuppress, name="ops-unsuppress"),
]
