"""POST /api/articles: push one article in, authenticated by its Source's token.

201 {"id"} for a new article, 200 {"id", "duplicate"|"updated"} for a known one, 401 for a bad
token, 4xx {"error"} for anything else that cannot become an article (and an IngestRejection)."""

import hmac

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..ingest.articles import IngestError, ingest_record, queue_summary, record_rejection
from ..models import Source, hash_token
from . import security


def _source_for(request: HttpRequest) -> Source | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    # Stored hashed: the lookup is by the hash, so timing says nothing about the token itself.
    digest = hash_token(token)
    source = Source.objects.filter(api_token=digest, active=True).first()
    return source if source is not None and hmac.compare_digest(source.api_token, digest) else None


def _refuse(source: Source, status: int, reason: str) -> JsonResponse:
    record_rejection(source, "POST /api/articles", reason)
    return JsonResponse({"error": reason}, status=status)


@csrf_exempt
@require_POST
def articles(request: HttpRequest) -> JsonResponse:
    source = _source_for(request)
    if source is None:
        response = JsonResponse({"error": "missing or invalid bearer token"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="newsdigest"'
        return response
    limit = settings.NEWSDIGEST_API_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > limit:
        return _refuse(source, 413, f"body larger than {limit} bytes")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _refuse(source, 413, f"body larger than {limit} bytes")
    if "json" not in request.content_type:
        return _refuse(source, 415, f"send application/json, not {request.content_type or 'no content type'}")
    try:
        record = security.parse_json_object(body)
    except security.BadJSON as exc:
        return _refuse(source, 400, str(exc))
    try:
        with transaction.atomic():
            result = ingest_record(record, source)
            queue_summary(result)
    except IngestError as exc:
        return _refuse(source, 400, str(exc))
    if result.created:
        return JsonResponse({"id": result.article.pk}, status=201)
    return JsonResponse({"id": result.article.pk, "updated" if result.updated else "duplicate": True}, status=200)
