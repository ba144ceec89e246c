"""Files and records in, clean articles out; re-ingesting is a no-op, changed text an update."""

import json
import logging
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command

from tests.helpers.paths import DATA, SHARED_SAMPLES
from worker.ingest import articles, cleaning
from worker.models import Article, IngestRejection, Source, Summary

INGEST = DATA / "ingest"
PARA = ("The regional parliament approved the budget on Thursday after a long night of negotiation between the "
        "coalition partners, who had disagreed over spending on rail and schools.")


def body(n: int = 4, seed: str = "") -> str:
    return "\n\n".join(f"{PARA} {seed} Detail {i} of the story." for i in range(n))


@pytest.mark.django_db
def test_it_strips_the_footer_cruft_of_the_panjshir_sample(tmp_path):
    sample = SHARED_SAMPLES / "panjshir-article.txt"
    if not sample.exists():
        pytest.skip("shared sample panjshir-article.txt is absent")
    (result,) = articles.ingest_file(sample)
    text = result.article.text
    assert "Content Protection by" not in text
    assert "Back to top" not in text
    assert text.endswith("mobilized the world public opinion against it.")
    assert "\n\n" in text


def test_cleaning_drops_cookie_share_related_and_byline_paragraphs():
    raw = "\n\n".join(["By Jane Doe", "We use cookies to improve your experience.", PARA, "Share this article",
                       PARA + " Second.", "Related posts", "Another headline you may like", "Back to top"])
    assert cleaning.clean_text(raw, author="Jane Doe") == f"{PARA}\n\n{PARA} Second."


def test_cleaning_keeps_a_sentence_that_only_mentions_cookies_at_length():
    sentence = "The bakery said its cookies use a recipe from 1890. " * 5
    assert cleaning.clean_text(sentence).startswith("The bakery said")


def test_normalise_text_applies_nfc_straight_quotes_and_paragraphs():
    raw = "Cafe\u0301  \u201cquoted\u201d it\u2019s\u200b\r\n\r\n\r\nnext   line"
    assert cleaning.normalise_text(raw) == "Caf\u00e9 \"quoted\" it's\n\nnext line"


@pytest.mark.django_db
def test_it_ingests_an_html_page_with_metadata_and_without_scripts():
    (result,) = articles.ingest_file(INGEST / "article.html")
    article = result.article
    assert article.title == "Riverton approves harbour bridge"
    assert article.author == "Jane Doe"
    assert article.canonical_url == "https://news.example.com/2026/bridge?id=7"
    assert article.language == "en"
    assert article.published_at.date().isoformat() == "2026-11-20"
    for cruft in ("SHOULD-NOT-APPEAR", "cookies", "Share this", "Back to top", "Content Protection", "By Jane Doe"):
        assert cruft not in article.text
    assert article.text.startswith("The city council of Riverton")


@pytest.mark.django_db
def test_it_ingests_a_forwarded_newsletter_email_from_its_html_part():
    (result,) = articles.ingest_file(INGEST / "newsletter.eml")
    article = result.article
    assert article.title == "Battery storage site planned in Portugal"
    assert article.author == "Energy Desk"
    assert article.published_at == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert "Plain version" not in article.text and "Unsubscribe" not in article.text
    assert article.text.startswith("Solaris Grid said")


@pytest.mark.django_db
def test_markdown_title_comes_from_the_first_heading(tmp_path):
    path = tmp_path / "note.md"
    path.write_text(f"\n# Budget passes\n\n{body()}")
    (result,) = articles.ingest_file(path)
    assert (result.article.title, result.created) == ("Budget passes", True)


@pytest.mark.django_db
def test_reingesting_the_same_file_is_a_no_op(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(f"Budget passes\n\n{body()}")
    first, again = articles.ingest_file(path)[0], articles.ingest_file(path)[0]
    assert (first.created, again.created, again.updated) == (True, False, False)
    assert Article.objects.count() == 1


@pytest.mark.django_db
def test_same_url_with_new_text_updates_in_place_and_resets_status():
    first = articles.ingest_article(title="Budget", text=body(), url="https://ex.com/budget?utm_source=x")
    Article.objects.filter(pk=first.article.pk).update(status=Article.Status.SUMMARIZED)
    changed = articles.ingest_article(title="Budget (updated)", text=body(5), url="https://EX.com/budget#top")
    article = Article.objects.get()
    assert (changed.created, changed.updated, changed.article.pk) == (False, True, first.article.pk)
    assert article.status == Article.Status.NEW
    assert article.content_hash == articles.content_hash(article.text) != first.article.content_hash
    assert article.title == "Budget (updated)"
    assert article.lsh_buckets.count() > 0


@pytest.mark.django_db(transaction=True)
def test_a_changed_article_is_summarized_again():
    first = articles.ingest_article(title="Budget", text=body(), url="https://ex.com/budget")
    articles.queue_summary(first)
    changed = articles.ingest_article(title="Budget", text=body(6), url="https://ex.com/budget")
    articles.queue_summary(changed)
    article = Article.objects.get()
    assert article.status == Article.Status.SUMMARIZED
    assert set(Summary.objects.values_list("content_hash", flat=True)) == {first.article.content_hash,
                                                                           article.content_hash}


@pytest.mark.django_db
def test_same_text_under_another_url_is_a_duplicate():
    first = articles.ingest_article(title="A", text=body(), url="https://a.example/x")
    second = articles.ingest_article(title="B", text=body(), url="https://b.example/y")
    assert (second.created, second.article.pk) == (False, first.article.pk)


@pytest.mark.django_db
def test_json_list_keeps_good_records_and_records_the_bad_one(tmp_path):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([{"title": "One", "text": body(seed="one")}, {"title": 5, "text": "x"},
                                {"title": "Three", "text": body(seed="three")}]))
    results = articles.ingest_file(path)
    assert [r.article.title for r in results] == ["One", "Three"]
    rejection = IngestRejection.objects.get()
    assert rejection.target.endswith("batch.json[1]") and "title must be a string" in rejection.reason


@pytest.mark.django_db
def test_cli_ingests_a_directory_and_records_refusals(tmp_path, caplog):
    (tmp_path / "good.txt").write_text(f"Good one\n\n{body()}")
    (tmp_path / "empty.md").write_text("   \n")
    out = __import__("io").StringIO()
    with caplog.at_level(logging.WARNING, logger="newsdigest.ingest"):
        call_command("ingest", str(tmp_path), "--no-summarize", "--source", "Desk", stdout=out, stderr=out)
    assert "1 new, 0 updated, 0 already known, 1 refused" in out.getvalue()
    rejection = IngestRejection.objects.get()
    assert (rejection.source, rejection.reason) == (Source.objects.get(name="Desk"), "empty.md: file is empty")
    assert "empty.md: file is empty" in caplog.text


@pytest.mark.django_db
def test_cli_accepts_a_glob(tmp_path, monkeypatch):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"Title {name}\n\n{body(seed=name)}")
    out = __import__("io").StringIO()
    call_command("ingest", str(tmp_path / "*.txt"), "--no-summarize", stdout=out)
    assert "2 new" in out.getvalue()


@time_machine.travel(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), tick=False)
@pytest.mark.django_db
def test_a_future_date_is_clamped_to_now():
    result = articles.ingest_article(title="T", text=body(), published_at="2030-01-01T00:00:00Z")
    assert result.article.published_at == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
