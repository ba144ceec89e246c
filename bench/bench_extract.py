"""Article-body extraction quality on the ScrapingHub article-extraction-benchmark (MIT; pages and
ground truth in bench/data/extraction, see ATTRIBUTION.md there), scored with that benchmark's own
metric (4-gram shingle precision/recall, normalised per page, F1 of the means).

Three extractors on the same pages in the same run: plain trafilatura (trafilatura.extract, default
settings), readability-lxml (Document.summary as text), and Newsdigest's page path
(worker.ingest.articles.extract_html: trafilatura, then readability when trafilatura's text is short or a notice).
Page classes are the ground-truth body length: short (< 2,000 characters), medium, long (> 6,000).

    .venv/bin/python bench/bench_extract.py [--corpus DIR] [--limit N] [--worst 5]

--corpus takes a full checkout of github.com/scrapinghub/article-extraction-benchmark (181 pages).
"""

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(__file__).parent / "data" / "extraction"
_TOKEN = re.compile(r"\w+", re.UNICODE)


def shingle_scores(true: str, pred: str, n: int = 4) -> tuple[float, float, float]:
    """tp, fp, fn over word 4-gram shingles, normalised to sum 1 (the benchmark's evaluate.py)."""
    def shingles(text: str) -> Counter:
        tokens = _TOKEN.findall(text or "")
        return Counter(tuple(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i:i + n])

    t, p = shingles(true), shingles(pred)
    tp = sum((t & p).values())
    fp, fn = sum((p - t).values()), sum((t - p).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def precision(tp: float, fp: float, fn: float) -> float:
    return 1.0 if fp == fn == 0 else 0.0 if tp == fp == 0 else tp / (tp + fp)


def recall(tp: float, fp: float, fn: float) -> float:
    return 1.0 if fp == fn == 0 else 0.0 if tp == fn == 0 else tp / (tp + fn)


def f1_of(scores: list[tuple[float, float, float]]) -> float:
    p = statistics.mean(precision(*s) for s in scores if s[0] + s[1] > 0)
    r = statistics.mean(recall(*s) for s in scores if s[0] + s[2] > 0)
    return 2 * p * r / (p + r) if p + r else 0.0


def page_f1(score: tuple[float, float, float]) -> float:
    p, r = precision(*score), recall(*score)
    return 2 * p * r / (p + r) if p + r else 0.0


def load(corpus: Path, limit: int | None) -> list[tuple[str, str, str]]:
    truth = json.loads((corpus / "ground-truth.json").read_text())
    pages = []
    for key in sorted(truth)[:limit]:
        path = corpus / "html" / f"{key}.html.gz"
        if path.exists():
            pages.append((key, gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"),
                          truth[key].get("articleBody", "")))
    return pages


def page_class(body: str) -> str:
    return "short" if len(body) < 2000 else "long" if len(body) > 6000 else "medium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--worst", type=int, default=5, help="list the N pages where Newsdigest trails most")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")
    import django

    django.setup()
    import trafilatura
    from readability import Document

    from worker.ingest.articles import extract_html
    from worker.ingest.cleaning import html_to_text

    extractors = {
        "trafilatura": lambda html: trafilatura.extract(html) or "",
        "readability": lambda html: html_to_text(Document(html).summary(html_partial=True)),
        "newsdigest": lambda html: extract_html(html)["text"],
    }
    pages = load(args.corpus, args.limit)
    scores: dict[str, dict[str, tuple]] = {name: {} for name in extractors}
    seconds = dict.fromkeys(extractors, 0.0)
    for key, html, body in pages:
        for name, extract in extractors.items():
            started = time.perf_counter()
            try:
                text = extract(html)
            except Exception:  # noqa: BLE001 - a page an extractor cannot read scores zero, like the benchmark
                text = ""
            seconds[name] += time.perf_counter() - started
            scores[name][key] = shingle_scores(body, text)
    classes = {key: page_class(body) for key, _, body in pages}
    print(f"{len(pages)} pages from {args.corpus}")
    print(f"{'extractor':<12} {'F1 all':>7} " + " ".join(f"{c:>7}" for c in ("short", "medium", "long"))
          + f" {'pages<0.5':>9} {'ms/page':>8}")
    for name in extractors:
        row = [f1_of(list(scores[name].values()))]
        for cls in ("short", "medium", "long"):
            members = [s for k, s in scores[name].items() if classes[k] == cls]
            row.append(f1_of(members) if members else float("nan"))
        low = sum(1 for s in scores[name].values() if page_f1(s) < 0.5)
        per_page = 1000 * seconds[name] / len(pages)
        print(f"{name:<12} " + " ".join(f"{v:7.3f}" for v in row) + f" {low:9d} {per_page:8.0f}")
    ours = scores["newsdigest"]
    failures = [k for k in ours if page_f1(ours[k]) < 0.5 and max(page_f1(scores["trafilatura"][k]),
                                                                   page_f1(scores["readability"][k])) > 0.9]
    print(f"pages below 0.5 where a peer is above 0.9: {len(failures)} {failures}")
    gaps = sorted(ours, key=lambda k: page_f1(ours[k]) - max(page_f1(scores[n][k]) for n in scores))
    for key in gaps[:args.worst]:
        print(f"  {key[:12]} {classes[key]:<6} " + " ".join(f"{n}={page_f1(scores[n][key]):.2f}" for n in scores))


if __name__ == "__main__":
    main()
