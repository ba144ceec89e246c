"""Render once + personalise vs. re-render per recipient, for a 12-story digest and 10,000 subscribers.

The re-render path (one MJML compile per recipient) is timed on a sample of REFERENCE_SAMPLE
subscribers and extrapolated per recipient; the cheap path is timed over all of them.
Run: .venv/bin/python bench/bench_render.py  (uses a throwaway SQLite database)
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUBSCRIBERS = 10_000
REFERENCE_SAMPLE = 200


def main() -> None:
    sys.path.insert(0, str(REPO))
    scratch = tempfile.mkdtemp(prefix="nd-bench-")
    for key in ("DATABASE_URL", "EMAIL_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="worker.settings", NEWSDIGEST_VAR_DIR=scratch)
    import django

    django.setup()
    from django.core.management import call_command

    from tests.helpers.factories import make_digest
    from worker import render
    from worker.models import Subscriber

    call_command("migrate", verbosity=0)
    digest = make_digest(12)
    compiles = []
    for _ in range(5):
        started = time.perf_counter()
        rendered = render.render_digest(digest)
        compiles.append(time.perf_counter() - started)
    readers = [Subscriber(pk=i, email=f"reader{i}@example.com", name=f"Reader {i}") for i in range(1, SUBSCRIBERS + 1)]

    started = time.perf_counter()
    for reader in readers:
        render.personalise(rendered, digest, reader)
    cheap_total = time.perf_counter() - started
    cheap = cheap_total / SUBSCRIBERS

    started = time.perf_counter()
    for reader in readers[:REFERENCE_SAMPLE]:
        render.render_for(digest, reader)
    reference = (time.perf_counter() - started) / REFERENCE_SAMPLE

    html_size = len(render.personalise(rendered, digest, readers[0]).html.encode())
    print(f"12-story digest, {SUBSCRIBERS:,} subscribers")
    print(f"mjml compile (render_digest, median of 5): {statistics.median(compiles) * 1000:.1f} ms")
    print(f"personalise: {cheap * 1e6:.0f} us/recipient, {cheap_total:.2f} s for {SUBSCRIBERS:,}")
    print(f"re-render per recipient (render_for, sampled on {REFERENCE_SAMPLE}): {reference * 1000:.1f} ms/recipient, "
          f"extrapolated {reference * SUBSCRIBERS:.0f} s for {SUBSCRIBERS:,}")
    print(f"ratio: personalise is {reference / cheap:.0f}x cheaper per recipient (target >= 20x)")
    print(f"HTML size: {html_size / 1024:.1f} KiB (Gmail clips above 102 KiB); text part "
          f"{len(rendered.text.encode()) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
