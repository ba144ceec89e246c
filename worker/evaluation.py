"""Score a summarize engine against a hand-labelled jsonl set, next to a Lead-3 baseline from the same run.

Lead-3 is computed every time so a number is never read without the bar it has to clear.
"""

import io
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rouge_score import rouge_scorer

from .offline import fold, is_content, split_sentences
from .schemas import ArticleSummary

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
Engine = Callable[[str, str], ArticleSummary]


class EvalDataError(ValueError):
    """The evaluation file is malformed; the message names the line."""


def _check_record(record: Any, number: int) -> dict:
    def fail(problem: str) -> EvalDataError:
        return EvalDataError(f"line {number}: {problem}")

    if not isinstance(record, dict):
        raise fail("expected a JSON object")
    for key in ("id", "text"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise fail(f"'{key}' must be a non-empty string")
    for key in ("title", "reference_summary"):
        if key in record and not isinstance(record[key], str):
            raise fail(f"'{key}' must be a string")
    for actor in record.get("actors", []):
        names = actor.get("names") if isinstance(actor, dict) else None
        if not names or not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise fail("each actor needs 'names', a non-empty list of strings")
    not_actors = record.get("not_actors", [])
    if not isinstance(not_actors, list) or not all(isinstance(n, str) for n in not_actors):
        raise fail("'not_actors' must be a list of strings")
    return record


def load_dataset(path: str | Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"line {number}: invalid JSON ({exc.msg})") from exc
            records.append(_check_record(record, number))
    return records


def lead3(text: str) -> str:
    sentences = split_sentences(text)
    # The same boilerplate filter the engine gets, so the baseline is not handicapped by footers.
    return " ".join(([s for s in sentences if is_content(s)] or sentences)[:3])


@cache
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_f1(prediction: str, reference: str) -> dict[str, float]:
    scores = _scorer().score(reference, prediction)
    return {kind: scores[kind].fmeasure for kind in ROUGE_TYPES}


def match_actors(predicted: list[str], gold: list[dict], not_actors: list[str] = ()) -> dict[str, int]:
    """Count true/false positives by name variants, case and accent folded.

    A second name for an already matched gold actor is a false positive: the digest would
    show the same person twice. A not_actor (a place, a footer) is a false positive too,
    and is also counted on its own because it is the embarrassing kind of error.
    """
    variants = [{fold(n) for n in actor["names"]} for actor in gold]
    forbidden = {fold(n) for n in not_actors}
    matched: set[int] = set()
    counts = {"tp": 0, "fp": 0, "fn": 0, "not_actor_hits": 0}
    for name in predicted:
        key = fold(name)
        hit = next((i for i, names in enumerate(variants) if key in names), None)
        if hit is not None and hit not in matched:
            matched.add(hit)
            counts["tp"] += 1
            continue
        counts["fp"] += 1
        counts["not_actor_hits"] += key in forbidden
    counts["fn"] = len(gold) - len(matched)
    return counts


def precision_recall_f1(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evidence_is_verbatim(summary: ArticleSummary, text: str) -> bool:
    normalised = " ".join(text.split())
    return all(" ".join(actor.evidence.split()) in normalised for actor in summary.key_actors)


def get_engine(name: str) -> Engine:
    if name == "offline":
        from . import offline

        return offline.summarize
    if name == "openai":
        from . import llm

        return lambda title, text: llm.summarize(title, text).summary
    raise ValueError(f"unknown engine {name!r}")


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {kind: sum(r[kind] for r in rows) / len(rows) if rows else 0.0 for kind in ROUGE_TYPES}


def evaluate(records: list[dict], engine: str = "offline", summarize: Engine | None = None) -> dict:
    """Run the engine over every record and aggregate; actor scores are micro-averaged."""
    summarize = summarize or get_engine(engine)
    engine_rouge, lead_rouge, articles = [], [], []
    totals = {"tp": 0, "fp": 0, "fn": 0, "not_actor_hits": 0}
    verbatim = 0
    elapsed = 0.0
    for record in records:
        started = time.perf_counter()
        result = summarize(record.get("title", ""), record["text"])
        elapsed += time.perf_counter() - started
        row: dict[str, Any] = {"id": record["id"], "summary": result.summary,
                               "actors": [a.name for a in result.key_actors]}
        if reference := record.get("reference_summary"):
            row["rouge"] = rouge_f1(result.summary, reference)
            engine_rouge.append(row["rouge"])
            lead_rouge.append(rouge_f1(lead3(record["text"]), reference))
        if "actors" in record:
            row["actor_counts"] = match_actors(row["actors"], record["actors"], record.get("not_actors", []))
            for key, value in row["actor_counts"].items():
                totals[key] += value
        row["evidence_verbatim"] = evidence_is_verbatim(result, record["text"])
        verbatim += row["evidence_verbatim"]
        articles.append(row)
    return {
        "engine": engine,
        "articles": len(records),
        "rouge": {"engine": _mean(engine_rouge), "lead3": _mean(lead_rouge)},
        "actors": {**precision_recall_f1(totals["tp"], totals["fp"], totals["fn"]), **totals},
        "evidence_verbatim_share": verbatim / len(records) if records else 0.0,
        "articles_per_second": len(records) / elapsed if elapsed else 0.0,
        "per_article": articles,
    }


def render_table(report: dict) -> str:
    table = Table(title=f"newsdigest eval: {report['engine']} on {report['articles']} articles")
    table.add_column("metric")
    table.add_column(report["engine"], justify="right")
    table.add_column("lead-3", justify="right")
    for kind in ROUGE_TYPES:
        table.add_row(f"{kind} F1", f"{report['rouge']['engine'][kind]:.3f}", f"{report['rouge']['lead3'][kind]:.3f}")
    actors = report["actors"]
    for key in ("precision", "recall", "f1"):
        table.add_row(f"actor {key}", f"{actors[key]:.3f}", "")
    table.add_row("actor tp / fp / fn", f"{actors['tp']} / {actors['fp']} / {actors['fn']}", "")
    table.add_row("not_actor hits", str(actors["not_actor_hits"]), "")
    table.add_row("evidence verbatim", f"{report['evidence_verbatim_share']:.0%}", "")
    table.add_row("articles/s", f"{report['articles_per_second']:.1f}", "")
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(table)
    return console.export_text()
