"""Bounce recognition on the kept corpus (tests/data/bounces/), ours next to flufl.bounce alone.

    DJANGO_SETTINGS_MODULE=worker.settings python bench/bench_bounces.py [--misses]
"""

import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
django.setup()

from tests.helpers.bounce_corpus import flufl_alone, manifest, ours, score  # noqa: E402


def main() -> None:
    rows = manifest()
    print(f"{len(rows)} messages ({sum(r['class'] == 'none' for r in rows)} not bounces)")
    results = {"newsdigest": score(ours), "flufl.bounce alone": score(flufl_alone)}
    names = list(next(iter(results.values())).counts)
    print(f"{'':22}" + "".join(f"{name:>22}" for name in results))
    for name in names:
        cells = "".join(f"{r.rate(name):>14.1%} ({r.counts[name][0]:>3}/{r.counts[name][1]:>3})"
                        for r in results.values())
        print(f"{name:22}{cells}")
    if "--misses" in sys.argv:
        print("\n".join(results["newsdigest"].misses))


if __name__ == "__main__":
    main()
