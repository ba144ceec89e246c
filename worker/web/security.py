"""Request-level guards shared by every view: who may reach a page, and what input reaches none.

A page needing a permission is decorated with `requires` (permissions and roles are the ops stage's,
worker.ops); a refusal is a 403 page naming the role the page needs (`refused`, the handler403).

PostgreSQL cannot store a NUL character in text; a NUL in any form field or query parameter would reach a
query and end as a 500 (and on SQLite be stored, then cut short by SMTP or a browser). No legitimate
input carries one, so such a request is answered 400 before any view runs. JSON bodies are checked by
the JSON endpoints themselves (`parse_json_object`).
"""

import json
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from .. import ops
from ..subscribers import client_network

NUL = "\x00"

View = Callable[..., HttpResponse]


class RoleRequired(PermissionDenied):
    """Refused for want of a role; the 403 page names it (`refused` below)."""

    def __init__(self, role: str):
        super().__init__(role)
        self.role = role


def requires(permission: str) -> Callable[[View], View]:
    """Log in first, then have `permission`; else a 403 naming the role that holds it."""
    role = ops.role_needed(permission)

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise RoleRequired(role)
            return view(request, *args, **kwargs)
        return login_required(checked)
    return decorate


@require_GET
@login_required
def start(request: HttpRequest) -> HttpResponse:
    """Where login leads when no page was asked for."""
    return redirect(ops.landing_page(request.user))


def refused(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 403 page: which role the page needs, and the way back to the reader's own start page."""
    role = getattr(exception, "role", "")
    user = request.user
    return render(request, "pages/desk/refused.html", {
        "role": role, "back": reverse(ops.landing_page(user) if user.is_authenticated else "login"),
    }, status=403)


def client_ip(request: HttpRequest) -> str | None:
    """The client of a request for login throttling, by the same rules as sign-up limits: an IPv6 client
    is its /64, given as the network's first address (django-axes stores an IP address)."""
    network = client_network(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))
    return None if network == "unknown" else network.partition("/")[0]


class BadJSON(ValueError):
    """The body is not a JSON object the API can take; the message says why."""


def _has_nul(value) -> bool:
    """Iterative walk: a deeply nested value must not recurse here either."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json_object(body: bytes) -> dict:
    """The body as a JSON object, or BadJSON: invalid, nested past the parser's depth, not an object,
    or carrying a NUL character."""
    try:
        data = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadJSON(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise BadJSON("invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadJSON("the body must be a JSON object")
    if _has_nul(data):
        raise BadJSON("the body contains a NUL character")
    return data


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path or any(NUL in key or any(NUL in v for v in values)
                                      for query in (request.GET, self._form(request))
                                      for key, values in query.lists()):
            message = "the request contains a NUL character"
            if request.content_type == "application/json" or request.path.startswith("/api/"):
                return JsonResponse({"error": message}, status=400)
            return HttpResponse(message, status=400, content_type="text/plain")
        return self.get_response(request)

    @staticmethod
    def _form(request: HttpRequest):
        # Only form posts are parsed here; JSON and other bodies stay unread for their views.
        if request.method == "POST" and request.content_type in ("application/x-www-form-urlencoded",
                                                                 "multipart/form-data"):
            return request.POST
        return QueryDict()
