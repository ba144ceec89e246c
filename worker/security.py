"""Request-level guards shared by every view.

PostgreSQL cannot store a NUL character in text; a NUL in any form field or query parameter would reach a
query and end as a 500 (and on SQLite be stored, then cut short by SMTP or a browser). No legitimate
input carries one, so such a request is answered 400 before any view runs. JSON bodies are checked by
the JSON endpoints themselves (`parse_json_object`).
"""

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

NUL = "\x00"


def client_ip(request: HttpRequest) -> str | None:
    """The client of a request for login throttling, by the same rules as sign-up limits: an IPv6 client
    is its /64, given as the network's first address (django-axes stores an IP address)."""
    from .subscribers import client_network

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
        from django.http import QueryDict

        return QueryDict()
