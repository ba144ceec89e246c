"""Grounding recall and precision on real article sentences quoted slightly wrong.

For every article of the evaluation set (tests/data/eval/dev.jsonl, plus the real article in
../shared/samples when present) and every annotated actor, the sentences naming the actor are
quoted back the way models misquote: verbatim, a comma dropped, the final stop dropped, straight
quotes for curly ones (and back), an ellipsis cutting the middle, and all of these at once. A real
actor must be kept. Invented actors must be dropped: names from other articles that the article
itself never uses as words, in any annotated spelling (with a real sentence as evidence), and real
names with invented quotes (a sentence of another article; a real sentence with a number changed; a
real sentence with "not" inserted). For invented quotes the bench also counts whether the invented
wording itself survived as evidence (it must never).

    .venv/bin/python bench/bench_grounding.py [--per-actor 2] [--set dev|real_news]
"""

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")

import django  # noqa: E402

django.setup()

from worker.summarize import grounding  # noqa: E402
from worker.summarize.schemas import ArticleSummary, KeyActor  # noqa: E402
from worker.text import fold, split_sentences  # noqa: E402

# shared/ sits beside the checkout in CI, two levels up from a worktree.
SAMPLE = next((p for p in (ROOT.parent / "shared/samples/panjshir-article.txt",
                           ROOT.parent.parent / "shared/samples/panjshir-article.txt") if p.exists()), None)
PANJSHIR_ACTORS = [{"names": ["Ahmad Massoud"], "kind": "person"}, {"names": ["Taliban"], "kind": "group"},
                   {"names": ["Northern Alliance"], "kind": "group"}]


def load_articles(name: str) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / f"tests/data/eval/{name}.jsonl").read_text().splitlines() if line]
    if name == "dev" and SAMPLE is not None:
        text = SAMPLE.read_text(encoding="utf-8")
        rows.append({"id": "panjshir", "title": text.splitlines()[0], "text": text, "actors": PANJSHIR_ACTORS})
    return rows


_WORDS = re.compile(r"\w+")


def kind_of(spec: dict) -> str:
    return spec.get("kind", "person")  # the real-news set annotates names only


def swap_quotes(s: str) -> str:
    if any(c in s for c in "“”‘’"):
        return s.translate(str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"}))
    return re.sub(r'"([^"]*)"', "“\\1”", s).replace("'", "’")


def ellipsis(s: str) -> str:
    words = s.split()
    keep = max(3, len(words) * 2 // 5)
    return " ".join(words[:keep]) + " ... " + " ".join(words[-keep:])


PERTURBATIONS = {
    "verbatim": lambda s: s,
    "comma dropped": lambda s: s.replace(",", "", 1),
    "final stop dropped": lambda s: s.rstrip().rstrip(".!?"),
    "quotes swapped": swap_quotes,
    "ellipsis in the middle": ellipsis,
    "all of them": lambda s: ellipsis(swap_quotes(s.replace(",", "", 1)).rstrip().rstrip(".!?")),
}


def change_number(s: str) -> str | None:
    match = re.search(r"\d+", s)
    return s[:match.start()] + str(int(match.group()) + 7) + s[match.end():] if match else None


def insert_not(s: str) -> str | None:
    match = re.search(r"\b(is|was|are|were|will|would|has|had|can|could|should|did)\b", s)
    return s[:match.end()] + " not" + s[match.end():] if match else None


def kept(actor: KeyActor, text: str) -> KeyActor | None:
    summary = ArticleSummary(headline="h", summary="s", why_it_matters="w", key_actors=[actor], topics=[], flags=[])
    result = grounding.ground(summary, text).summary.key_actors
    return result[0] if result else None


def make(name: str, kind: str, evidence: str) -> KeyActor:
    return KeyActor(name=name, kind=kind, role="participant", action="acted", evidence=evidence)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-actor", type=int, default=2, help="sentences quoted per actor")
    parser.add_argument("--set", default="dev", choices=["dev", "real_news"],
                        help="dev: written for the project (+ the shared real sample); real_news: Wikinews")
    args = parser.parse_args()
    articles = load_articles(args.set)
    real = Counter()
    real_kept = Counter()
    baseline_kept = Counter()  # the peer: evidence accepted only when the article contains it verbatim
    invented = Counter()
    invented_kept = Counter()
    wording_survived = Counter()
    started = time.perf_counter()
    for index, row in enumerate(articles):
        text = f"{row['title']}\n\n{row['text']}"
        sentences = [s for s in split_sentences(row["text"]) if len(s.split()) >= 6]
        folded_text = fold(text)
        for spec in row["actors"]:
            name = spec["names"][0]
            naming = [s for s in sentences if fold(name) in fold(s)][: args.per_actor]
            for sentence in naming:
                for label, perturb in PERTURBATIONS.items():
                    real[label] += 1
                    real_kept[label] += kept(make(name, kind_of(spec), perturb(sentence)), text) is not None
                    baseline_kept[label] += grounding.normalise(perturb(sentence)) in grounding.normalise(text)
                wrong = [("a sentence of another article", other_sentence(articles, index)),
                         ("a number changed", change_number(sentence)), ("'not' inserted", insert_not(sentence))]
                for label, quote in wrong:
                    if quote is None or quote == sentence:
                        continue
                    invented[f"invented quote: {label}"] += 1
                    survivor = kept(make(name, kind_of(spec), quote), text)
                    invented_kept[f"invented quote: {label}"] += survivor is not None
                    wording_survived[f"invented quote: {label}"] += (
                        survivor is not None and grounding.normalise(survivor.evidence) == grounding.normalise(quote))
        words = f" {' '.join(_WORDS.findall(folded_text))} "
        for other in articles[:index] + articles[index + 1:]:
            for spec in other["actors"]:
                name = spec["names"][0]
                # A borrowed name the article itself uses (in any of its spellings) is not invented.
                if not sentences or any(f" {' '.join(_WORDS.findall(fold(n)))} " in words for n in spec["names"]):
                    continue
                invented["invented name"] += 1
                invented_kept["invented name"] += kept(make(name, kind_of(spec), sentences[0]), text) is not None
                break
    elapsed = time.perf_counter() - started
    print(f"{len(articles)} articles, {sum(real.values()) + sum(invented.values())} checks in {elapsed:.1f}s\n")
    print("| real actor, evidence quoted with | cases | kept | baseline: verbatim only |")
    print("| --- | ---: | ---: | ---: |")
    for label in PERTURBATIONS:
        n = max(1, real[label])
        print(f"| {label} | {real[label]} | {real_kept[label] / n:.1%} | {baseline_kept[label] / n:.1%} |")
    total = max(1, sum(real.values()))
    print(f"| **all real actors** | {sum(real.values())} | **{sum(real_kept.values()) / total:.1%}** | "
          f"{sum(baseline_kept.values()) / total:.1%} |\n")
    print("| invented | cases | dropped | invented wording shown |")
    print("| --- | ---: | ---: | ---: |")
    for label in sorted(invented):
        dropped = 1 - invented_kept[label] / invented[label]
        print(f"| {label} | {invented[label]} | {dropped:.1%} | {wording_survived[label]} |")


def other_sentence(articles: list[dict], index: int) -> str:
    other = articles[(index + 1) % len(articles)]
    return next(s for s in split_sentences(other["text"]) if len(s.split()) >= 8)


if __name__ == "__main__":
    main()
