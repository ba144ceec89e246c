"""Time a fresh `newsdigest demo` (new var/ each run), against the bare CLI start-up as a baseline.

Usage: .venv/bin/python bench/bench_demo.py [--runs 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], var_dir: str) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EMAIL_URL", "OPENAI_API_KEY"}}
    env["NEWSDIGEST_VAR_DIR"] = var_dir
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worker", *args], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    startup, fresh, again = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as var_dir:
            startup.append(timed(["check"], var_dir))
            fresh.append(timed(["demo"], var_dir))
            again.append(timed(["demo"], var_dir))
    med = statistics.median
    print(f"CLI start-up (newsdigest check): {med(startup):.2f} s")
    ratio = med(fresh) / med(startup)
    print(f"fresh demo (migrate + 6 articles + 3 sends): {med(fresh):.2f} s  ({ratio:.1f}x start-up)")
    print(f"second demo run (nothing new):   {med(again):.2f} s  ({med(again) / med(startup):.1f}x start-up)")
    print(f"target: fresh demo under 10 s -> {'met' if med(fresh) < 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
