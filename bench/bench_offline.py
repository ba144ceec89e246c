"""Throughput of the offline engine on 800-word articles: the target is >= 50 articles/s on one core.

Articles are stitched from the development set so the text has realistic names, quotes and
boilerplate, instead of lorem ipsum that would flatter the actor extractor.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker import offline  # noqa: E402

DEV_SET = ROOT / "tests" / "data" / "eval" / "dev.jsonl"
WORDS = 800


def articles(count: int) -> list[tuple[str, str]]:
    records = [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
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


def main(count: int = 200) -> None:
    batch = articles(count)
    offline.summarize(*batch[0])  # warm the gazetteer cache outside the timing
    wall, cpu = time.perf_counter(), time.process_time()
    for title, text in batch:
        offline.summarize(title, text)
    # CPU time is the per-core figure; wall time also counts whatever else shares the machine.
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    words = sum(len(text.split()) for _, text in batch) / len(batch)
    print(f"{count} articles, {words:.0f} words each: {count / cpu:.1f} articles/s per core (CPU time), "
          f"{count / wall:.1f} articles/s wall clock")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
