"""Editor-written text in the desk is grounded like a model's answer."""

import pytest
from django.urls import reverse

from tests.helpers.fake_openai import ARTICLE
from tests.web.desk_helpers import items, post
from worker.summarize.grounding import editor_text_flags

pytestmark = pytest.mark.usefixtures("fast_passwords")


def test_a_name_the_article_does_not_have_is_flagged():
    flags = editor_text_flags("Ahmad Massoud met President Joe Biden on Monday.", ARTICLE)
    assert flags == ["editor's text names 'Joe Biden', who is not in the article"]


def test_names_the_article_has_raise_no_flag():
    assert editor_text_flags("The Taliban denied that Ahmad Massoud retook two districts.", ARTICLE) == []


def test_a_particle_name_is_checked_whole():
    assert editor_text_flags("Officials said Ursula von der Leyen called.", ARTICLE) == [
        "editor's text names 'Ursula von der Leyen', who is not in the article"]


def test_a_number_the_article_does_not_have_is_flagged():
    assert editor_text_flags("The fighting killed 300 people.", ARTICLE) == [
        "editor's text has numbers not in the article: 300"]


@pytest.mark.django_db
def test_the_desk_shows_the_flag_on_the_edited_story(editor, digest):
    item = items(digest)[0]
    post(editor, "desk-item-edit", digest.pk, item.pk, summary="Zorblax Quintavius resigned.")
    page = editor.get(reverse("desk-draft", args=[digest.pk])).content.decode()
    assert "names &#x27;Zorblax Quintavius&#x27;, who is not in the article" in page
