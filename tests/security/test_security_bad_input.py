"""Issue 13.11 (web/API part): hostile input gets a 4xx and writes nothing, on SQLite and PostgreSQL;
a real 500 is logged with its traceback."""

import json
import logging

import pytest
from django.conf import settings
from django.test import Client

from worker.models import Article, IngestRejection, Newsletter, Source, Subscriber

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"email": "a@example.com", "name": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.fixture
def newsletter():
    return Newsletter.objects.create(name="Morning Brief", slug="brief", from_email="brief@news.example")


@pytest.fixture
def source():
    source = Source.objects.create(name="Wire API", kind=Source.Kind.API)
    source.token = source.issue_api_token()
    return source


def post_article(source, body: str):
    return Client().post("/api/articles", body, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {source.token}")


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT])
def test_deeply_nested_json_on_the_subscribe_api_answers_400(newsletter, body):
    response = Client(REMOTE_ADDR="203.0.113.5").post("/api/subscribe/brief", body, content_type="application/json")
    assert response.status_code == 400 and "error" in response.json()
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("body", [DEEP, '{"title": "T", "text": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_deeply_nested_json_on_the_articles_api_answers_400_with_a_rejection(source, body):
    response = post_article(source, body)
    assert response.status_code == 400 and "error" in response.json()
    assert not Article.objects.exists() and IngestRejection.objects.filter(source=source).exists()


@pytest.mark.parametrize("field", ["url", "guid", "title", "text", "author"])
def test_a_nul_in_any_article_field_answers_400_and_stores_nothing(source, field):
    record = {"title": "Inflation falls", "text": "The statistics office said inflation fell. " * 20,
              "url": "https://stats.example/1", "guid": "g-1", "author": "Desk"}
    record[field] = record[field][:5] + "\x00" + record[field][5:]
    response = post_article(source, json.dumps(record))
    assert response.status_code == 400 and "NUL" in response.json()["error"]
    assert not Article.objects.exists()


def test_a_nul_in_a_json_key_answers_400(source):
    assert post_article(source, json.dumps({"title": "T", "te\x00xt": "x"})).status_code == 400


@pytest.mark.parametrize("field", ["email", "name", "timezone"])
def test_a_nul_in_a_sign_up_form_field_answers_400(newsletter, field):
    data = {"email": "ada@example.com", "name": "Ada", "timezone": "UTC"}
    data[field] = data[field][:2] + "\x00" + data[field][2:]
    response = Client(REMOTE_ADDR="203.0.113.6").post("/subscribe/brief/", data)
    assert response.status_code == 400 and not Subscriber.objects.exists()


def test_a_nul_in_the_subscribe_api_answers_400(newsletter):
    response = Client(REMOTE_ADDR="203.0.113.7").post(
        "/api/subscribe/brief", json.dumps({"email": "ada@example.com", "name": "A\x00da"}),
        content_type="application/json")
    assert response.status_code == 400 and not Subscriber.objects.exists()


def test_a_nul_in_a_query_string_answers_400(client):
    assert client.get("/archive/", {"q": "a\x00b"}).status_code == 400


def test_a_web_500_is_logged_with_its_traceback(newsletter, monkeypatch):
    from worker import subscribers

    def explode(*args, **kwargs):
        raise RuntimeError("boom in subscribe")

    monkeypatch.setattr(subscribers, "subscribe", explode)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        client = Client(REMOTE_ADDR="203.0.113.8", raise_request_exception=False)
        assert client.post("/subscribe/brief/", {"email": "a@example.com"}).status_code == 500
    finally:
        logger.removeHandler(handler)
    assert records and records[-1].exc_info and "boom in subscribe" in str(records[-1].exc_info[1])
    # ... and that logger writes to the console outside DEBUG too (Django's default would not).
    assert settings.LOGGING["loggers"]["django.request"]["handlers"] == ["console"]
