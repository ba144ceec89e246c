"""Article language and the newsletter's voice, through the summarize stage (both engines)."""

import threading
import time

import pytest
from django.db import connection

from tests.helpers.fake_openai import (
    ARTICLE,
    ARTICLE_TITLE,
    answer,
    canned_summary,
    completion,
)
from worker import ratelimit
from worker.models import Article, Newsletter, Source, Summary
from worker.summarize import llm_client, summarize_article, summary_lock
from worker.summarize.engines import choose_engine
from worker.summarize.errors import EngineError
from worker.summarize.voice import Voice, detect_language

pytestmark = pytest.mark.django_db

FRENCH_TITLE = "Le gouvernement présente sa réforme des retraites"
FRENCH = ("Le gouvernement a présenté mardi un projet de réforme des retraites qui repousse l'âge légal de "
          "départ. La Première ministre a défendu un texte « juste et nécessaire » devant l'Assemblée nationale. "
          "Les syndicats ont appelé à une journée de grève le mois prochain et dénoncent une réforme injuste.")


def make_article(text: str = ARTICLE, title: str = ARTICLE_TITLE, newsletter: Newsletter | None = None,
                 language: str = "", suffix: str = "1") -> Article:
    source = Source.objects.create(name=f"source {suffix}", newsletter=newsletter)
    return Article.objects.create(title=title, text=text, content_hash=f"hash-{suffix}", source=source,
                                  language=language)


def french_newsletter(**voice) -> Newsletter:
    return Newsletter.objects.create(name="La lettre", slug="lettre", **voice)


def user_message(body: dict) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][0]


def test_detects_french_and_english():
    assert detect_language(f"{FRENCH_TITLE}\n{FRENCH}") == "fr"
    assert detect_language(ARTICLE) == "en"


def test_too_little_text_has_no_language():
    assert detect_language("OK") == ""


def test_the_language_is_detected_and_stored_at_summarize_time():
    article = make_article(FRENCH, FRENCH_TITLE)
    summarize_article(article.pk, engine="offline")
    article.refresh_from_db()
    assert article.language == "fr"


def test_a_language_the_source_gave_is_kept():
    article = make_article(language="de")
    summarize_article(article.pk, engine="offline")
    article.refresh_from_db()
    assert article.language == "de"


def test_the_offline_engine_flags_a_language_it_does_not_handle_well():
    summary = summarize_article(make_article(FRENCH, FRENCH_TITLE).pk, engine="offline")
    assert any("French" in f and "not handle well" in f for f in summary.flags)


def test_the_offline_engine_raises_no_language_flag_on_english():
    summary = summarize_article(make_article().pk, engine="offline")
    assert not any("offline engine" in f for f in summary.flags)


def test_the_offline_engine_says_it_cannot_translate_and_keeps_the_source_language():
    newsletter = Newsletter.objects.create(name="Daily", slug="daily", summary_language="fr")
    summary = summarize_article(make_article(newsletter=newsletter).pk, engine="offline")
    assert any("cannot translate" in f and "English" in f and "French" in f for f in summary.flags)
    assert "Massoud" in summary.summary  # the English source text, not a translation


def test_the_llm_engine_is_told_the_articles_language(fake_openai):
    fake_openai.push(answer(canned_summary()))
    article = make_article(language="fr")
    summarize_article(article.pk, engine="openai")
    assert "The article is written in French." in user_message(fake_openai.requests[0])


def test_the_llm_engine_gets_the_newsletters_voice(fake_openai):
    fake_openai.push(answer(canned_summary()))
    newsletter = french_newsletter(summary_language="fr", summary_length="short", summary_tone="plain and warm",
                                   summary_instructions="Spell out every acronym.")
    summarize_article(make_article(newsletter=newsletter).pk, engine="openai")
    message = user_message(fake_openai.requests[0])
    assert "in French" in message and "1 to 2 sentences, at most 40 words" in message
    assert "tone: plain and warm" in message and "Spell out every acronym." in message
    # The voice is an instruction, so it sits outside the fence.
    assert message.index("Spell out every acronym.") < message.index("<article>\nTitle:")


def test_the_voice_is_part_of_the_cache_key(fake_openai):
    fake_openai.handler = lambda body: answer(canned_summary())
    newsletter = french_newsletter(summary_language="fr")
    article = make_article(newsletter=newsletter)
    first = summarize_article(article.pk, engine="openai")
    assert summarize_article(article.pk, engine="openai").pk == first.pk  # same voice: cached
    newsletter.summary_tone = "dry"
    newsletter.save()
    second = summarize_article(article.pk, engine="openai")
    assert second.pk != first.pk and len(fake_openai.requests) == 2
    assert first.prompt_version.startswith(llm_client.PROMPT_VERSION + "+")


def test_the_default_voice_keeps_the_plain_prompt_version():
    assert choose_engine("openai").identity(Voice())[1] == llm_client.PROMPT_VERSION


def test_a_long_voice_allows_longer_summaries(fake_openai):
    words = " ".join(["Ahmad Massoud said his fighters retook two districts."] * 12)  # 96 words
    fake_openai.push(answer(canned_summary(summary=words)))
    newsletter = french_newsletter(summary_length="long")
    summary = summarize_article(make_article(newsletter=newsletter).pk, engine="openai")
    assert len(summary.summary.split()) == 96 and not any("shortened" in f for f in summary.flags)


def test_tokens_of_a_failed_article_are_recorded(fake_openai):
    fake_openai.push(completion("no JSON", usage=(300, 20)), completion("none again", usage=(320, 30)))
    article = make_article()
    with pytest.raises(EngineError):
        summarize_article(article.pk, engine="openai")
    article.refresh_from_db()
    assert (article.status, article.failed_prompt_tokens, article.failed_completion_tokens) == ("failed", 620, 50)


@pytest.mark.django_db(transaction=True)
def test_a_second_worker_waits_for_the_first_instead_of_paying_twice(fake_openai, settings, redis_url):
    settings.REDIS_URL = redis_url
    ratelimit.redis_client.cache_clear()
    article = make_article()
    model, version = choose_engine("openai").identity(Voice())
    key = {"content_hash": article.content_hash, "engine": "openai", "model": model, "prompt_version": version}

    def first_worker() -> None:  # holds the lock while "asking the model", then stores its summary
        with summary_lock(key):
            held.set()
            time.sleep(1.0)
            Summary.objects.create(article=article, summary="theirs", **key)
        connection.close()

    held = threading.Event()
    thread = threading.Thread(target=first_worker)
    thread.start()
    held.wait(5)
    summary = summarize_article(article.pk, engine="openai")
    thread.join(5)
    assert summary.summary == "theirs" and fake_openai.requests == []
