"""Regenerate in the desk is a task with progress: the web request only queues it."""

import pytest
from django.urls import reverse

from tests.helpers.fake_openai import error
from tests.web.desk_helpers import items, post
from worker.models import Digest, Regeneration
from worker.summarize.regenerate import run_regeneration

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def test_the_request_only_queues_the_regeneration(editor, digest):
    item = items(digest)[0]
    before = item.summary_id
    post(editor, "desk-item-regenerate", digest.pk, item.pk)  # on-commit callbacks not run: no worker yet
    item.refresh_from_db()
    assert item.summary_id == before
    assert Regeneration.objects.get(item=item).status == Regeneration.Status.QUEUED


def test_the_draft_page_shows_a_queued_regeneration_and_polls_it(editor, digest):
    item = items(digest)[0]
    post(editor, "desk-item-regenerate", digest.pk, item.pk)
    page = editor.get(reverse("desk-draft", args=[digest.pk])).content.decode()
    assert "New summary queued for a worker" in page and reverse("desk-regenerations", args=[digest.pk]) in page
    state = editor.get(reverse("desk-regenerations", args=[digest.pk])).json()
    assert state == {"pending": True, "items": {str(item.pk): {"status": "queued", "error": ""}}}


def test_a_second_click_while_queued_queues_nothing_more(editor, digest):
    item = items(digest)[0]
    post(editor, "desk-item-regenerate", digest.pk, item.pk)
    post(editor, "desk-item-regenerate", digest.pk, item.pk)
    assert Regeneration.objects.filter(item=item).count() == 1


def test_a_failed_regeneration_keeps_the_summary_and_shows_the_reason(editor, digest, fake_openai,
                                                                    settings):
    settings.NEWSDIGEST_SUMMARY_ENGINE = "openai"
    fake_openai.push(error(401, "invalid api key"))
    item = items(digest)[0]
    before = item.summary_id
    post(editor, "desk-item-regenerate", digest.pk, item.pk)
    job = run_regeneration(Regeneration.objects.get(item=item).pk)  # what the worker does
    item.refresh_from_db()
    assert job.status == Regeneration.Status.FAILED and "invalid api key" in job.error
    assert item.summary_id == before
    page = editor.get(reverse("desk-draft", args=[digest.pk])).content.decode()
    assert "could not be regenerated: HTTP 401: invalid api key" in page


def test_a_digest_approved_meanwhile_is_not_changed_by_the_worker(editor, digest):
    item = items(digest)[0]
    before = item.summary_id
    post(editor, "desk-item-regenerate", digest.pk, item.pk)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    job = run_regeneration(Regeneration.objects.get(item=item).pk)
    item.refresh_from_db()
    assert job.status == Regeneration.Status.FAILED and "only a draft" in job.error
    assert item.summary_id == before


def test_the_editor_sets_the_newsletters_voice_from_the_desk(editor, digest):
    post(editor, "desk-voice", digest.pk, summary_language="fr", summary_length="short", summary_tone="warm",
         summary_instructions="Spell out acronyms.")
    digest.newsletter.refresh_from_db()
    voice = digest.newsletter
    assert (voice.summary_language, voice.summary_length, voice.summary_tone) == ("fr", "short", "warm")


def test_an_unknown_language_code_is_refused_with_the_reason(editor, digest):
    response = post(editor, "desk-voice", digest.pk, summary_language="xx", summary_length="standard")
    digest.newsletter.refresh_from_db()
    assert digest.newsletter.summary_language == ""
    page = editor.get(response.url).content.decode()
    assert "is not an ISO 639-1 language code" in page
