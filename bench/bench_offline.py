"""Throughput and peak memory of the offline engine on ~800-word articles, with and without the NER model.

Articles are stitched from the real-news evaluation set (Wikinews via GUM, CC BY 2.5) so the text
has realistic names, quotes, captions and interview turns. The target is >= 30 articles/s per core
with the NER model loaded. Usage: python bench/bench_offline.py [COUNT]  (default 100).
"""

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")

import django  # noqa: E402

django.setup()  # worker.summarize imports the models

from worker.summarize import ner, offline  # noqa: E402

REAL_NEWS = ROOT / "tests" / "data" / "eval" / "real_news.jsonl"
WORDS = 800


def articles(count: int) -> list[tuple[str, str]]:
    records = [json.loads(line) for line in REAL_NEWS.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = []
    for i in range(count):
        paragraphs: list[str] = []
        k = i
        while sum(len(p.split()) for p in paragraphs) < WORDS:
            paragraphs.extend(records[k % len(records)]["text"].split("\n\n"))
            k += 7
        text = "\n\n".join(paragraphs)
        result.append((records[i % len(records)]["title"], " ".join(text.split(" ")[:WORDS])))
    return result


def measure(batch: list[tuple[str, str]], use_ner: bool) -> tuple[float, float]:
    offline.summarize(*batch[0], use_ner=use_ner)  # warm caches (and load the model) outside the timing
    wall, cpu = time.perf_counter(), time.process_time()
    for title, text in batch:
        offline.summarize(title, text, use_ner=use_ner)
    # CPU time is the per-core figure; wall time also counts whatever else shares the machine.
    return len(batch) / (time.process_time() - cpu), len(batch) / (time.perf_counter() - wall)


def main(count: int = 100) -> None:
    batch = articles(count)
    words = sum(len(text.split()) for _, text in batch) / len(batch)
    rules_cpu, rules_wall = measure(batch, use_ner=False)
    rules_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count} articles, {words:.0f} words each")
    print(f"rules only: {rules_cpu:.1f} articles/s per core (CPU time), {rules_wall:.1f} wall; "
          f"peak RSS {rules_rss:.0f} MiB")
    if not ner.available():
        print("NER model not installed: no NER figure")
        return
    ner_cpu, ner_wall = measure(batch, use_ner=True)
    ner_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"with NER ({ner.MODEL}): {ner_cpu:.1f} articles/s per core (CPU time), {ner_wall:.1f} wall; "
          f"peak RSS {ner_rss:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
