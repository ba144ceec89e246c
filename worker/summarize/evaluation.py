"""Score a summarize engine against a hand-labelled jsonl set, next to a Lead-3 baseline from the same run.

Lead-3 is computed every time so a number is never read without the bar it has to clear.
"""

import io
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rouge_score import rouge_scorer

from ..text import fold, is_content, quotes_balanced, split_sentences
from .engines import Engine, choose_engine
from .schemas import ActorKind, ArticleSummary, KeyActor
from .shorten import ends_badly, shorten
from .voice import Voice, detect_language

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


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


_CAPITALISED_PAIR = re.compile(r"\b([A-Z][\w'’.-]+) ([A-Z][\w'’.-]+)\b")


class BigramBaseline(Engine):
    """The naive peer, for evaluation only: the five most frequent capitalised word pairs as actors
    (each with the first sentence naming it as evidence), Lead-3 as the summary. Grounded like every
    engine, so it is measured on the same terms as the engines it is the bar for."""

    name = "bigrams"

    def identity(self, voice: Voice) -> tuple[str, str]:
        return "bigrams", voice.tag()

    def start(self, title: str, text: str, *, language: str, voice: Voice) -> "_Bigrams":
        return _Bigrams(title, text)


class _Bigrams:
    prompt_tokens = completion_tokens = requests = 0
    mode = ""
    trimmed = False

    def __init__(self, title: str, text: str):
        self.title, self.text = title, text

    def answer(self) -> ArticleSummary:
        counts = Counter(" ".join(pair) for pair in _CAPITALISED_PAIR.findall(self.text))
        sentences = split_sentences(self.text)
        actors = [KeyActor(name=name, kind=ActorKind.OTHER, role="", action="",
                           evidence=next((s for s in sentences if name in s), ""))
                  for name, _ in counts.most_common(5)]
        return ArticleSummary(headline=shorten(self.title), summary=lead3(self.text), why_it_matters="",
                              key_actors=actors, topics=[])

    def notes(self) -> list[str]:
        return []


ENGINES = ("offline", "offline-rules", "bigrams", "openai")


def get_engine(name: str) -> Engine:
    """The engines `newsdigest eval` scores: the workers' own (through `choose_engine`), the offline
    engine without its NER model, and the bigram baseline."""
    if name == "offline-rules":
        return choose_engine("offline", use_ner=False)
    if name == "bigrams":
        return BigramBaseline()
    if name in ENGINES:
        return choose_engine(name)
    raise ValueError(f"unknown engine {name!r}")


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {kind: sum(r[kind] for r in rows) / len(rows) if rows else 0.0 for kind in ROUGE_TYPES}


_JUNK_ACTION = re.compile(r"^is named\b|^is (?:mr|mrs|ms|dr|sir|president|minister)\.?$", re.IGNORECASE)


def worker_path(engine: Engine) -> Callable[[str, str], ArticleSummary]:
    """What a worker does with an article: detect its language, then the engine's grounded summary."""
    def summarize(title: str, text: str) -> ArticleSummary:
        return engine.summarize(title, text, language=detect_language(f"{title}\n{text}")).summary

    return summarize


def evaluate(records: list[dict], engine: str = "offline",
             summarize: Callable[[str, str], ArticleSummary] | None = None) -> dict:
    """Run the engine over every record, the way the workers run it, and aggregate; actor scores are
    micro-averaged. `summarize` replaces the engine (tests score hand-written answers).

    Besides the scores, it counts what a reader notices: headlines ending on a function word or
    inside a quotation, summaries with an unclosed quote, filler actions ("is named: ..."), and
    how often "why it matters" is left empty rather than padded.
    """
    summarize = summarize or worker_path(get_engine(engine))
    engine_rouge, lead_rouge, articles = [], [], []
    totals = {"tp": 0, "fp": 0, "fn": 0, "not_actor_hits": 0}
    verbatim = bad_headlines = open_quotes = filler_actions = empty_why = 0
    elapsed = 0.0
    for record in records:
        started = time.perf_counter()
        result = summarize(record.get("title", ""), record["text"])
        elapsed += time.perf_counter() - started
        row: dict[str, Any] = {"id": record["id"], "headline": result.headline, "summary": result.summary,
                               "why_it_matters": result.why_it_matters,
                               "actors": [a.name for a in result.key_actors],
                               "actions": [a.action for a in result.key_actors]}
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
        bad_headlines += ends_badly(result.headline)
        open_quotes += not quotes_balanced(result.summary)
        filler_actions += sum(bool(_JUNK_ACTION.search(a.action)) for a in result.key_actors)
        empty_why += not result.why_it_matters
        articles.append(row)
    count = len(records)
    return {
        "engine": engine,
        "articles": count,
        "rouge": {"engine": _mean(engine_rouge), "lead3": _mean(lead_rouge)},
        "actors": {**precision_recall_f1(totals["tp"], totals["fp"], totals["fn"]), **totals},
        "evidence_verbatim_share": verbatim / count if count else 0.0,
        "headlines_ending_badly": bad_headlines,
        "summaries_with_open_quote": open_quotes,
        "filler_actions": filler_actions,
        "why_it_matters_empty_share": empty_why / count if count else 0.0,
        "articles_per_second": count / elapsed if elapsed else 0.0,
        "per_article": articles,
    }


def splits(records: list[dict]) -> dict[str, list[dict]]:
    """The tune and test parts of a set that has them, else the whole set as "all"."""
    named = sorted({r["split"] for r in records if r.get("split")})
    if not named:
        return {"all": records}
    return {name: [r for r in records if r.get("split") == name] for name in named}


def render_table(reports: dict | list[dict], title: str = "") -> str:
    """One column per engine, plus Lead-3 (the same for every engine, so taken from the first)."""
    reports = [reports] if isinstance(reports, dict) else reports
    first = reports[0]
    table = Table(title=title or f"newsdigest eval: {first['articles']} articles")
    table.add_column("metric")
    for report in reports:
        table.add_column(report["engine"], justify="right")
    table.add_column("lead-3", justify="right")

    def row(label: str, cell: Callable[[dict], str], lead: str = "") -> None:
        table.add_row(label, *(cell(r) for r in reports), lead)

    for kind in ROUGE_TYPES:
        row(f"{kind} F1", lambda r, k=kind: f"{r['rouge']['engine'][k]:.3f}", f"{first['rouge']['lead3'][kind]:.3f}")
    lead_l = first["rouge"]["lead3"]["rougeL"] or 1
    row("rougeL / lead-3", lambda r: f"{r['rouge']['engine']['rougeL'] / lead_l:.2f}x")
    for key in ("precision", "recall", "f1"):
        row(f"actor {key}", lambda r, k=key: f"{r['actors'][k]:.3f}")
    row("actor tp / fp / fn", lambda r: f"{r['actors']['tp']} / {r['actors']['fp']} / {r['actors']['fn']}")
    row("not_actor hits", lambda r: str(r["actors"]["not_actor_hits"]))
    row("filler actions", lambda r: str(r["filler_actions"]))
    row("headlines ending badly", lambda r: str(r["headlines_ending_badly"]))
    row("summaries with open quote", lambda r: str(r["summaries_with_open_quote"]))
    row("why it matters empty", lambda r: f"{r['why_it_matters_empty_share']:.0%}")
    row("evidence verbatim", lambda r: f"{r['evidence_verbatim_share']:.0%}")
    row("articles/s", lambda r: f"{r['articles_per_second']:.1f}")
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(table)
    return console.export_text()
