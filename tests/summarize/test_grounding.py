import pytest

from tests.helpers.fake_openai import ARTICLE, actor, canned_summary
from worker.models import Article
from worker.summarize import offline, summarize_article
from worker.summarize.grounding import ground
from worker.summarize.schemas import ArticleSummary


def grounded(**changes):
    return ground(ArticleSummary.model_validate(canned_summary(**changes)), ARTICLE)


def names(result) -> list[str]:
    return [a.name for a in result.summary.key_actors]


def with_actors(*extra: dict) -> dict:
    return {"key_actors": [*canned_summary()["key_actors"], *extra]}


def test_faithful_answer_passes_untouched():
    result = grounded()
    assert result.problems == []
    assert result.summary.flags == []
    assert names(result) == ["Ahmad Massoud", "Ahmad Shah Massoud", "Taliban", "Zabihullah Mujahid",
                             "United Nations"]


def test_father_and_son_who_share_a_surname_stay_distinct():
    assert {"Ahmad Massoud", "Ahmad Shah Massoud"} <= set(names(grounded()))


def test_actor_whose_name_is_not_in_the_article_is_dropped_and_flagged():
    result = grounded(**with_actors(actor("Hamid Karzai", "person", "The Taliban denied the claim.")))
    assert "Hamid Karzai" not in names(result)
    assert "dropped actor 'Hamid Karzai': name not in article" in result.summary.flags
    assert result.problems == ["key actor 'Hamid Karzai': name not in article"]


def test_actor_with_invented_evidence_is_dropped_and_flagged():
    result = grounded(**with_actors(actor("Kabul officials", "group", "Officials in Kabul praised the offensive.")))
    assert "dropped actor 'Kabul officials': name not in article" in result.summary.flags
    result = grounded(**with_actors(actor("Taliban", "group", "The Taliban announced a ceasefire on Tuesday.")))
    assert "dropped actor 'Taliban': evidence not in article" in result.summary.flags


def test_evidence_matches_despite_curly_quotes_and_whitespace_and_is_quoted_as_written():
    evidence = "The  United Nations called for talks\nbetween the two sides."
    result = grounded(key_actors=[actor("United Nations", "organisation", evidence)])
    assert result.problems == []
    assert result.summary.key_actors[0].evidence == "The United Nations called for talks between the two sides."


def test_slightly_misquoted_evidence_is_replaced_by_the_article_wording():
    result = grounded(key_actors=[actor("Taliban", "group", "The Taliban denied this claim.")])
    assert result.summary.key_actors[0].evidence == "The Taliban denied the claim."


def test_accent_and_transliteration_variants_resolve_to_the_article_spelling():
    result = grounded(key_actors=[actor("Ahmad Masoud", "person", canned_summary()["key_actors"][0]["evidence"]),
                                  actor("Zabihullah Mujāhid", "person",
                                        canned_summary()["key_actors"][3]["evidence"])])
    assert names(result) == ["Ahmad Massoud", "Zabihullah Mujahid"]


def test_surname_alone_becomes_the_only_full_name_in_the_article():
    evidence = canned_summary()["key_actors"][3]["evidence"]
    result = grounded(key_actors=[actor("Mujahid", "person", evidence)])
    assert names(result) == ["Zabihullah Mujahid"]


def test_surname_entry_merges_into_the_full_name_entry():
    evidence = canned_summary()["key_actors"][3]["evidence"]
    result = grounded(key_actors=[actor("Zabihullah Mujahid", "person", evidence),
                                  actor("Mujahid", "person", evidence, role="spokesman")])
    assert names(result) == ["Zabihullah Mujahid"]


def test_surname_shared_by_father_and_son_is_not_guessed():
    evidence = canned_summary()["key_actors"][0]["evidence"]
    result = grounded(key_actors=[actor("Massoud", "person", evidence)])
    assert names(result) == []
    assert result.problems == [
        "key actor 'Massoud': ambiguous surname, could be 'Ahmad Massoud' or 'Ahmad Shah Massoud'"]


def test_places_and_cited_publications_are_dropped_but_countries_that_act_are_kept():
    article = ARTICLE + "\nAfghanistan rejected the report.\n"
    answer = canned_summary(key_actors=[
        actor("Kabul", "other", "Officials in Kabul declined to comment."),
        actor("Reuters", "organisation", canned_summary()["key_actors"][3]["evidence"]),
        actor("Afghanistan", "country", "Afghanistan rejected the report."),
    ])
    result = ground(ArticleSummary.model_validate(answer), article)
    assert names(result) == ["Afghanistan"]
    assert "dropped actor 'Kabul': a place, not an actor" in result.summary.flags
    assert "dropped actor 'Reuters': a cited publication, not an actor" in result.summary.flags
    assert result.problems == []


def test_numbers_absent_from_the_article_are_a_problem():
    result = grounded(summary="Ahmad Massoud said his 5,000 fighters retook two districts. The Taliban denied it.")
    assert result.problems == ["numbers not in the article: 5,000"]


def test_overlong_summary_is_cut_to_whole_sentences():
    long = "Ahmad Massoud said his fighters retook two districts in the valley. " * 8
    result = grounded(summary=long.strip())
    assert len(result.summary.summary.split()) <= 80
    assert result.summary.summary.endswith("valley.")
    assert "summary shortened to 80 words" in result.summary.flags


@pytest.mark.django_db
def test_offline_engine_output_is_grounded_too():
    text = ARTICLE + "\nBack to top\n"
    article = Article.objects.create(title="Panjshir", text=text, content_hash="h-offline")
    raw = offline.summarize(article.title, text)
    summary = summarize_article(article.pk, engine="offline")
    assert summary.key_actors, raw
    for a in summary.key_actors:
        assert a["name"].split()[-1] in text
        assert " ".join(a["evidence"].split()) in " ".join(text.split())
