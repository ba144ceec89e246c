"""Plain-text and Markdown articles as editors save them: wire copy without a headline line, headline
plus kicker, Markdown with front matter. The title is taken only where there is one; no paragraph is lost."""

import json
from datetime import UTC, datetime

import pytest

from tests.helpers.paths import REPO, SHARED_SAMPLES
from worker.ingest import articles, cleaning

# Wire copy as agencies file it: dateline, one long lead sentence, no headline line.
WIRE_LEAD = ("KABUL, Sept 6 (Reuters) - Taliban forces said on Monday they had taken control of the Panjshir "
             "valley, the last province holding out against them, though resistance fighters said they were "
             "still present in strategic positions and would continue the fight.")
WIRE_MORE = ("Thousands of Taliban fighters overran eight districts of Panjshir overnight on Sunday, according to "
             "witnesses in the valley, who spoke on condition of anonymity. The National Resistance Front said "
             "its forces were present in all strategic positions across the valley.")


def ingest_text(tmp_path, content: str, name: str = "story.txt"):
    path = tmp_path / name
    path.write_text(content)
    (result,) = articles.ingest_file(path)
    return result.article


@pytest.mark.django_db
def test_a_one_paragraph_wire_story_lands_with_its_first_sentence_as_title(tmp_path):
    article = ingest_text(tmp_path, WIRE_LEAD)
    assert article.title == "Taliban forces said on Monday they had taken control of the Panjshir valley"
    assert article.text == WIRE_LEAD


@pytest.mark.django_db
def test_a_first_paragraph_of_prose_stays_in_the_body(tmp_path):
    article = ingest_text(tmp_path, f"{WIRE_LEAD}\n\n{WIRE_MORE}")
    assert article.text == f"{WIRE_LEAD}\n\n{WIRE_MORE}"


@pytest.mark.django_db
def test_a_short_line_without_a_full_stop_before_a_blank_line_is_the_title(tmp_path):
    article = ingest_text(tmp_path, f"Taliban claim control of Panjshir\n\n{WIRE_LEAD}\n\n{WIRE_MORE}")
    assert (article.title, article.text) == ("Taliban claim control of Panjshir", f"{WIRE_LEAD}\n\n{WIRE_MORE}")


@pytest.mark.django_db
def test_a_first_line_ending_in_a_full_stop_is_body_not_title(tmp_path):
    first = "The valley fell on Monday."
    article = ingest_text(tmp_path, f"{first}\n\n{WIRE_MORE}")
    assert (article.title, article.text) == ("The valley fell on Monday", f"{first}\n\n{WIRE_MORE}")


@pytest.mark.django_db
def test_a_first_line_glued_to_its_paragraph_is_not_taken_away_from_it(tmp_path):
    article = ingest_text(tmp_path, f"Resistance holds out\n{WIRE_MORE}")
    assert article.text == f"Resistance holds out\n{WIRE_MORE}".replace("\n", " ")


@pytest.mark.django_db
def test_a_section_label_before_the_headline_is_dropped(tmp_path):
    article = ingest_text(tmp_path, f"World News\n\nTaliban claim control of Panjshir\n\n{WIRE_MORE}")
    assert (article.title, article.text) == ("Taliban claim control of Panjshir", WIRE_MORE)


def test_a_long_first_sentence_is_cut_at_a_clause_boundary():
    sentence = ("Thousands of Taliban fighters overran eight districts of Panjshir overnight on Sunday, according "
                "to witnesses in the valley who spoke on condition of anonymity to reporters.")
    assert articles.headline(sentence) == ("Thousands of Taliban fighters overran eight districts of Panjshir "
                                         "overnight on Sunday")


def test_a_long_first_sentence_without_a_clause_boundary_is_cut_at_a_word():
    sentence = ("Thousands of Taliban fighters overran eight districts of Panjshir overnight on Sunday according "
                "to witnesses in the valley who spoke on condition of anonymity to reporters.")
    assert articles.headline(sentence) == ("Thousands of Taliban fighters overran eight districts of Panjshir "
                                         "overnight on Sunday according to…")


@pytest.mark.django_db
def test_markdown_front_matter_gives_title_date_and_url(tmp_path):
    content = ("---\ntitle: \"Panjshir: the last valley\"\ndate: 2021-09-06T10:00:00Z\n"
               "url: https://news.example/panjshir\nlayout: post\n---\n\n" + f"{WIRE_LEAD}\n\n{WIRE_MORE}")
    article = ingest_text(tmp_path, content, "story.md")
    assert (article.title, article.url, article.published_at) == (
        "Panjshir: the last valley", "https://news.example/panjshir", datetime(2021, 9, 6, 10, tzinfo=UTC))
    assert article.text == f"{WIRE_LEAD}\n\n{WIRE_MORE}"


@pytest.mark.django_db
def test_markdown_without_a_heading_is_read_like_plain_text(tmp_path):
    article = ingest_text(tmp_path, WIRE_LEAD, "story.md")
    assert (article.title, article.text) == (
        "Taliban forces said on Monday they had taken control of the Panjshir valley", WIRE_LEAD)


@pytest.mark.django_db
def test_the_panjshir_sample_keeps_its_headline_and_first_paragraph():
    sample = SHARED_SAMPLES / "panjshir-article.txt"
    if not sample.exists():
        pytest.skip("shared sample panjshir-article.txt is absent")
    (result,) = articles.ingest_file(sample)
    assert result.article.title == "The World's Alliance against Taliban"
    assert result.article.text.startswith("After the Taliban's lightning offensive and the fall of the Afghan")


# Real article bodies as plain text: the ground truth of the ScrapingHub extraction benchmark sample
# (MIT, bench/data/extraction/ATTRIBUTION.md), wire copy among them.
REAL = json.loads((REPO / "bench" / "data" / "extraction" / "ground-truth.json")
                  .read_text())


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(REAL), ids=[k[:8] for k in sorted(REAL)])
def test_a_real_article_saved_as_text_keeps_every_paragraph(tmp_path, key):
    body = REAL[key]["articleBody"]
    article = ingest_text(tmp_path, body)
    kept = article.text if article.text == cleaning.clean_text(body) else f"{article.title}\n\n{article.text}"
    assert kept == cleaning.clean_text(body)


@pytest.mark.django_db
@pytest.mark.parametrize(("prefix", "title"), [
    ("e7994d55", "Britain's Conservative Party was accused Wednesday of trying to deceive voters by changing "
                 "the name…"),
    ("374ac9a5", "Dubai's flagship carrier Emirates Airline finalized a deal to purchase 30 of Boeing 's 787-9 "
                 "Dreamliner jets"),
    ("d605bdef", "A muddled view of US-China trade talks once again seems to be weighing on investors"),
    ("ecb46e3e", "Brock Nelson's second goal of the game 2:55 into overtime capped a frantic comeback to lift "
                 "the New…"),
], ids=["ap-london", "dubai-dash", "cnn-hong-kong", "lone-dateline-line"])
def test_a_real_wire_story_is_titled_by_its_first_sentence_without_dateline(tmp_path, prefix, title):
    (key,) = [k for k in REAL if k.startswith(prefix)]
    assert ingest_text(tmp_path, REAL[key]["articleBody"]).title == title
