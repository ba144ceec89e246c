"""POST /api/articles: bearer token per Source, 201 new, 200 known, 4xx with a reason."""

import json

import pytest

from worker.models import Article, IngestRejection, Source

PARA = ("The national statistics office said on Friday that inflation fell to 2.1 percent in October, "
        "the lowest rate in three years, helped by cheaper energy and food.")
TEXT = "\n\n".join(f"{PARA} Point {i}." for i in range(4))


@pytest.fixture
def source(db):
    source = Source.objects.create(name="Wire API", kind=Source.Kind.API)
    source.token = source.issue_api_token()  # shown once; only its hash is stored
    return source


def post(client, source, payload, token=None, content_type="application/json", raw=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token or source.token}"}
    data = raw if raw is not None else json.dumps(payload)
    return client.post("/api/articles", data=data, content_type=content_type, **headers)


def test_a_new_article_answers_201_with_its_id(client, source):
    response = post(client, source, {"title": "Inflation falls", "text": TEXT, "url": "https://stats.example/1",
                                     "author": "Stats Desk", "published_at": "2026-11-20T09:00:00Z"})
    assert response.status_code == 201
    article = Article.objects.get(pk=response.json()["id"])
    assert (article.title, article.author, article.source) == ("Inflation falls", "Stats Desk", source)


def test_a_duplicate_answers_200_with_the_same_id(client, source):
    first = post(client, source, {"title": "Inflation falls", "text": TEXT}).json()["id"]
    again = post(client, source, {"title": "Inflation falls", "text": TEXT})
    assert (again.status_code, again.json()) == (200, {"id": first, "duplicate": True})


def test_a_changed_text_at_the_same_url_answers_200_updated(client, source):
    first = post(client, source, {"title": "T", "text": TEXT, "url": "https://stats.example/1"}).json()["id"]
    again = post(client, source, {"title": "T", "text": TEXT + " Revised.", "url": "https://stats.example/1"})
    assert (again.status_code, again.json()) == (200, {"id": first, "updated": True})


def test_html_bodies_are_extracted(client, source):
    html = f"<html><body><nav>Menu</nav><article><h1>Inflation</h1><p>{PARA}</p><p>{PARA} More.</p></article>" \
           "<script>evil()</script></body></html>"
    response = post(client, source, {"title": "Inflation", "html": html})
    text = Article.objects.get(pk=response.json()["id"]).text
    assert response.status_code == 201 and text.startswith(PARA) and "evil" not in text


@pytest.mark.parametrize("authorization", ["", "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz"])
def test_a_bad_token_answers_401(client, source, authorization):
    response = client.post("/api/articles", data=json.dumps({"title": "T", "text": TEXT}),
                           content_type="application/json", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert not Article.objects.exists()


def test_an_inactive_source_token_answers_401(client, source):
    Source.objects.filter(pk=source.pk).update(active=False)
    assert post(client, source, {"title": "T", "text": TEXT}).status_code == 401


@pytest.mark.parametrize(("payload", "raw", "content_type", "status", "error"), [
    (None, "{not json", "application/json", 400, "invalid JSON"),
    (None, "[1, 2]", "application/json", 400, "the body must be a JSON object"),
    ({"title": "T"}, None, "application/json", 400, "article has no text (give text or html)"),
    ({"title": "T", "text": ["a"]}, None, "application/json", 400, "text must be a string, not list"),
    ({"title": "T", "text": TEXT, "published_at": "soon"}, None, "application/json", 400,
     "published_at is not a date: 'soon'"),
    ({"title": "T", "text": TEXT, "url": "ftp://x/y"}, None, "application/json", 400,
     "url must be http or https: 'ftp://x/y'"),
    ({"title": "T", "text": TEXT}, None, "text/plain", 415, "send application/json, not text/plain"),
], ids=["invalid-json", "not-object", "no-text", "text-list", "bad-date", "bad-url", "wrong-type"])
def test_bad_input_answers_4xx_with_the_reason_and_is_recorded(client, source, payload, raw, content_type, status,
                                                               error):
    response = post(client, source, payload, raw=raw, content_type=content_type)
    assert response.status_code == status
    assert error in response.json()["error"]
    assert error in IngestRejection.objects.get(source=source).reason
    assert not Article.objects.exists()


def test_an_oversized_body_answers_413(client, source, settings):
    settings.NEWSDIGEST_API_MAX_BODY_BYTES = 1000
    response = post(client, source, {"title": "T", "text": "x " * 1000})
    assert (response.status_code, response.json()) == (413, {"error": "body larger than 1000 bytes"})


def test_get_is_not_allowed(client, source):
    assert client.get("/api/articles").status_code == 405


def test_posts_need_no_csrf_token(source):
    from django.test import Client

    response = post(Client(enforce_csrf_checks=True), source, {"title": "T", "text": TEXT})
    assert response.status_code == 201
