"""The evaluation harness on tiny cases whose scores can be worked out by hand."""

import json

import pytest
from django.core.management import CommandError, call_command

from worker.summarize.evaluation import (
    BigramBaseline,
    EvalDataError,
    evaluate,
    evidence_is_verbatim,
    lead3,
    load_dataset,
    match_actors,
    precision_recall_f1,
    rouge_f1,
)
from worker.summarize.schemas import ActorKind, ArticleSummary, KeyActor

TEXT = "Anna Berg opened the bridge. The council paid for it. Traffic fell by half. Shops reopened."
GOLD = [{"names": ["Anna Berg", "Berg"]}, {"names": ["City Council", "the council"]}]


def summary(text: str, actors: list[tuple[str, str]]) -> ArticleSummary:
    return ArticleSummary(
        headline="h", summary=text, why_it_matters="w", topics=[],
        key_actors=[KeyActor(name=n, kind=ActorKind.PERSON, role="", action="", evidence=e) for n, e in actors],
    )


def write(tmp_path, lines: list[str]):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_perfect_summary_scores_one():
    assert rouge_f1("the bridge opened", "the bridge opened") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_a_summary_sharing_no_words_scores_zero():
    assert rouge_f1("cats sleep", "the bridge opened")["rouge1"] == 0.0


def test_half_overlap_scores_half_on_rouge1():
    # One of two words shared each way: precision = recall = F1 = 0.5.
    assert rouge_f1("bridge cats", "bridge opened")["rouge1"] == pytest.approx(0.5)


def test_perfect_actors_score_one():
    counts = match_actors(["Anna Berg", "City Council"], GOLD)
    assert counts == {"tp": 2, "fp": 0, "fn": 0, "not_actor_hits": 0}
    assert precision_recall_f1(2, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_names_match_any_variant_case_and_accent_folded():
    counts = match_actors(["BERG", "City Cóuncil"], GOLD)
    assert counts["tp"] == 2


def test_a_second_name_for_the_same_gold_actor_is_a_false_positive():
    counts = match_actors(["Anna Berg", "Berg"], GOLD)
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "not_actor_hits": 0}


def test_naming_a_not_actor_is_counted_separately():
    counts = match_actors(["Anna Berg", "Oldbridge"], GOLD, not_actors=["Oldbridge"])
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "not_actor_hits": 1}


def test_known_wrong_answer_scores_what_it_should():
    # 1 right out of 3 reported, 1 found out of 2 gold: P = 1/3, R = 1/2, F1 = 0.4.
    counts = match_actors(["Anna Berg", "Shops", "Traffic"], GOLD)
    scores = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
    assert scores == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4})


def test_no_predictions_scores_zero_not_a_division_error():
    assert precision_recall_f1(0, 0, 2) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_evidence_must_be_verbatim_after_whitespace_normalisation():
    text = "Anna Berg opened\n the bridge.  The council paid."
    assert evidence_is_verbatim(summary("s", [("Anna Berg", "Anna Berg opened the bridge.")]), text)
    assert not evidence_is_verbatim(summary("s", [("Anna Berg", "Anna Berg built the bridge.")]), text)


def test_lead3_is_the_first_three_sentences():
    assert lead3(TEXT) == "Anna Berg opened the bridge. The council paid for it. Traffic fell by half."


def test_evaluate_aggregates_a_perfect_engine_to_one():
    record = {"id": "a", "title": "t", "text": TEXT, "reference_summary": "Anna Berg opened the bridge.",
              "actors": GOLD[:1]}
    report = evaluate([record], "fake", lambda title, text: summary(
        "Anna Berg opened the bridge.", [("Anna Berg", "Anna Berg opened the bridge.")]))
    assert report["rouge"]["engine"]["rougeL"] == 1.0
    assert report["actors"]["f1"] == 1.0
    assert report["evidence_verbatim_share"] == 1.0
    assert report["articles"] == 1


def test_a_bad_line_is_reported_with_its_number(tmp_path):
    path = write(tmp_path, [json.dumps({"id": "a", "text": "Fine."}), "{not json"])
    with pytest.raises(EvalDataError, match="line 2"):
        load_dataset(path)


def test_a_record_without_text_is_rejected(tmp_path):
    path = write(tmp_path, [json.dumps({"id": "a"})])
    with pytest.raises(EvalDataError, match="line 1: 'text'"):
        load_dataset(path)


def test_actors_need_a_list_of_names(tmp_path):
    path = write(tmp_path, [json.dumps({"id": "a", "text": "x", "actors": [{"names": "Anna"}]})])
    with pytest.raises(EvalDataError, match="line 1"):
        load_dataset(path)


def test_the_dev_set_is_valid_and_large_enough():
    records = load_dataset("tests/data/eval/dev.jsonl")
    assert len(records) >= 25
    assert all(r.get("reference_summary") and r.get("actors") for r in records)


def test_eval_command_prints_a_table_with_the_lead3_baseline(tmp_path, capsys):
    path = write(tmp_path, [json.dumps({"id": "a", "title": "Bridge", "text": TEXT,
                                        "reference_summary": "Anna Berg opened a bridge.", "actors": GOLD})])
    call_command("eval", str(path))
    out = capsys.readouterr().out
    assert "lead-3" in out and "rougeL" in out


def test_eval_command_json_output_parses(tmp_path, capsys):
    path = write(tmp_path, [json.dumps({"id": "a", "text": TEXT, "actors": GOLD})])
    call_command("eval", str(path), "--json", "--limit", "1", "--engine", "offline")
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "offline" and report["articles"] == 1


def test_eval_command_names_the_bad_line(tmp_path):
    path = write(tmp_path, ["[]"])
    with pytest.raises(CommandError, match="line 1"):
        call_command("eval", str(path))


def test_the_real_news_set_is_attributed_labelled_and_split():
    records = load_dataset("tests/data/eval/real_news.jsonl")
    assert len(records) >= 60
    # Each source's licence travels with its articles: Wikinews is CC BY 2.5, Global Voices CC BY 3.0.
    licences = {"https://en.wikinews.org/": "CC BY 2.5", "http://globalvoicesonline.org/": "CC BY 3.0"}
    assert all(any(r["source_url"].startswith(site) and licence in r["licence"]
                   for site, licence in licences.items()) for r in records)
    assert all(r.get("reference_summary") and r.get("actors") for r in records)
    assert {r["split"] for r in records} == {"tune", "test"}


def test_the_bigram_baseline_names_the_most_frequent_capitalised_pairs():
    text = "Anna Berg met Carl Olsen. Anna Berg left. Anna Berg returned while Carl Olsen waited."
    assert [a.name for a in BigramBaseline().summarize("t", text).summary.key_actors] == ["Anna Berg", "Carl Olsen"]


def test_a_summary_with_an_unclosed_quote_is_counted():
    record = {"id": "a", "title": "t", "text": TEXT}
    report = evaluate([record], "fake", lambda title, text: summary('He said "we will', []))
    assert report["summaries_with_open_quote"] == 1
