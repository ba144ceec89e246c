"""Fit the offline engine's key-actor selection (offline.SELECTION_WEIGHTS) on the tune split of the real-news set.

Every candidate the engine finds in a tune article (`offline.actor_candidates`, the NER model loaded)
is one example, positive when its name is one of the article's gold actors. A logistic regression
with an L2 penalty is fitted by Newton's method; each article is then left out of the fit in turn
and the engine's selection rule (most likely first, an action of its own, at most 7, interviews
their interviewees plus two) is scored on it, so the threshold is chosen on articles the weights
never saw. The test split is never read. Paste the printed weights into offline.py.

    .venv/bin/python bench/fit_actor_selection.py [--l2 1.0]
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")

import django  # noqa: E402

django.setup()  # worker.summarize imports the models

from worker.summarize import offline  # noqa: E402
from worker.text import fold, split_sentences  # noqa: E402

REAL_NEWS = ROOT / "tests" / "data" / "eval" / "real_news.jsonl"
FEATURES = list(offline.SELECTION_WEIGHTS)
THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.55, 0.05)]


def examples() -> list[tuple[int, offline.Scored, int | None, int]]:
    """(article, candidate, index of the gold actor it names or None, gold actors in the article)."""
    records = [json.loads(line) for line in REAL_NEWS.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for article, record in enumerate(r for r in records if r.get("split") == "tune"):
        text, interviewers, interviewees = offline.strip_furniture(record["text"])
        gold = [{fold(name) for name in actor["names"]} for actor in record["actors"]]
        for entry in offline.actor_candidates(text, split_sentences(text), True, interviewers, interviewees,
                                               complete=True):
            hit = next((k for k, names in enumerate(gold) if fold(entry.name) in names), None)
            rows.append((article, entry, hit, len(gold)))
    return rows


def fit(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Weights with the bias last; the bias is not penalised."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.diag([*[l2] * x.shape[1], 0.0])
    w = np.zeros(xb.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-xb @ w))
        gradient = xb.T @ (p - y) + penalty @ w
        hessian = xb.T @ (xb * (p * (1 - p))[:, None]) + penalty
        w -= np.linalg.solve(hessian, gradient)
    return w


def selected_f1(rows: list, probabilities: np.ndarray, threshold: float) -> tuple[float, int, int]:
    """Micro F1 of the engine's selection rule at `threshold`, with tp and fp."""
    tp = fp = fn = 0
    for article in sorted({r[0] for r in rows}):
        ranked = sorted(((p, r) for p, r in zip(probabilities, rows, strict=True) if r[0] == article),
                        key=lambda pair: -pair[0])
        entries = [r[1] for _, r in ranked]
        interview = bool(entries[0].features["interview"])
        limit = offline.MAX_ACTORS if not interview else min(
            offline.MAX_ACTORS, sum(e.features["speaker"] for e in entries) + offline.INTERVIEW_EXTRA_ACTORS)
        found: set[int] = set()
        taken = 0
        for p, (_, entry, hit, _) in ranked:
            if taken >= limit or p < threshold:
                break
            if len(entry.action.split()) < 2:
                continue
            taken += 1
            if hit is not None and hit not in found:
                found.add(hit)
                tp += 1
            else:
                fp += 1
        fn += ranked[0][1][3] - len(found)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return 2 * precision * recall / max(precision + recall, 1e-9), tp, fp


def main(l2: float) -> None:
    rows = examples()
    x = np.array([[r[1].features[k] for k in FEATURES] for r in rows])
    y = np.array([r[2] is not None for r in rows], dtype=float)
    articles = np.array([r[0] for r in rows])
    held_out = np.zeros(len(rows))
    for article in np.unique(articles):
        mask = articles == article
        w = fit(x[~mask], y[~mask], l2)
        held_out[mask] = 1 / (1 + np.exp(-(np.hstack([x[mask], np.ones((mask.sum(), 1))]) @ w)))
    print(f"{len(rows)} candidates in {len(np.unique(articles))} tune articles, {int(y.sum())} naming a gold actor")
    print("leave-one-article-out F1 by threshold:")
    for threshold in THRESHOLDS:
        f1, tp, fp = selected_f1(rows, held_out, threshold)
        print(f"  {threshold:.2f}: F1 {f1:.3f} (tp {tp}, fp {fp})")
    w = fit(x, y, l2)
    print("SELECTION_WEIGHTS (all of tune):")
    for name, weight in zip(FEATURES, w[:-1], strict=True):
        print(f'    "{name}": {weight:.2f},')
    print(f"SELECTION_BIAS = {w[-1]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty on the weights (not the bias)")
    main(parser.parse_args().l2)
