"""The ops console: sent and sending digests with their progress, failures, bounce rates and clicks;
the ops actions on a digest (worker.ops); and the recent bounces and complaints with the server's
words, where an address can be un-suppressed (an audited operator decision). Ops need worker.ops.SEND."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import audit, bounces, clicks, deliver, ops
from ..models import Delivery, Digest, Subscriber, SuppressionEvent
from .security import requires

RECENT_BOUNCES = 200
Kind = SuppressionEvent.Kind
SHOWN = [Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.POLICY_BOUNCE, Kind.COMPLAINT]

_ops = requires(ops.SEND)


@require_GET
@_ops
def console(request: HttpRequest) -> HttpResponse:
    digests = list(Digest.objects.select_related("newsletter").exclude(status=Digest.Status.DRAFT).order_by("-pk")[:50])
    totals = clicks.digest_totals([d.pk for d in digests])
    for digest in digests:
        digest.click_totals = totals[digest.pk]
    return render(request, "pages/desk/console.html", {"digests": digests})


@require_GET
@_ops
def console_digest(request: HttpRequest, pk: int) -> HttpResponse:
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    failures = (Delivery.objects.filter(digest=digest, status=Delivery.Status.FAILED)
                .select_related("subscriber").order_by("pk"))
    return render(request, "pages/desk/console_digest.html", {
        "digest": digest, "status": ops.status(pk), "failures": failures, "rates": bounces.rates_line(pk),
        "recipients": deliver.eligible_subscribers(digest).count(),
        "click_totals": clicks.digest_totals([pk])[pk],
        "trail": [(e, audit.describe(e)) for e in audit.trail(pk)],
    })


@require_GET
@_ops
def console_status(request: HttpRequest, pk: int) -> JsonResponse:
    get_object_or_404(Digest, pk=pk)
    return JsonResponse(ops.status(pk))


@require_POST
@_ops
def console_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    get_object_or_404(Digest, pk=pk)
    try:
        messages.success(request, ops.perform(action, pk, request.user))
    except deliver.SendRefused as exc:
        messages.error(request, str(exc))
    return redirect("ops-digest", pk=pk)


@require_GET
@_ops
def recent_bounces(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind", "")
    events = (SuppressionEvent.objects.filter(kind__in=[kind] if kind in SHOWN else SHOWN)
              .select_related("subscriber", "digest").order_by("-created_at", "-pk"))[:RECENT_BOUNCES]
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
