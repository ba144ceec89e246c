"""The ops JSON API: a digest's send status and the ops actions on it (worker.ops), for scripts.

Authenticated by a key from `newsdigest ops token USERNAME` (Authorization: Token <key>), never by a
session; the key's user needs worker.ops.SEND like the console's.
"""

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .. import deliver, ops
from ..models import Digest


def _api(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        user = ops.token_user(key.strip()) if scheme == "Token" and key.strip() else None
        if user is None:
            response = JsonResponse({"error": "missing or invalid token (Authorization: Token <key>)"}, status=401)
            response["WWW-Authenticate"] = "Token"
            return response
        if not user.has_perm(ops.SEND):
            return JsonResponse({"error": f"{user.get_username()} may not operate sends"}, status=403)
        request.user = user
        return view(request, *args, **kwargs)

    # Token-authenticated, no cookies: CSRF cannot apply.
    return csrf_exempt(wrapped)


@require_GET
@_api
def api_status(request: HttpRequest, pk: int) -> JsonResponse:
    try:
        return JsonResponse(ops.status(pk))
    except deliver.SendRefused as exc:
        return JsonResponse({"error": str(exc)}, status=404)


@require_POST
@_api
def api_action(request: HttpRequest, pk: int, action: str) -> JsonResponse:
    if not Digest.objects.filter(pk=pk).exists():
        return JsonResponse({"error": f"no digest {pk}"}, status=404)
    try:
        message = ops.perform(action, pk, request.user)
    except deliver.SendRefused as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"ok": True, "message": message, "status": ops.status(pk)})
