"""GET /r/<token>: the click redirect of a tracked story link. It buffers the hit (worker.clicks
counts it later, off the request path) and redirects to the signed URL and nowhere else; a token that
does not verify gets a 400 page."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from .. import clicks, tokens


@require_http_methods(["GET", "HEAD"])
def follow(request: HttpRequest, token: str) -> HttpResponse:
    try:
        item_id, url = clicks.open_token(token)
    except tokens.BadToken:
        return render(request, "pages/click_invalid.html", status=400)
    clicks.record(request, item_id, url)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
