"""Subscriber import benchmark: `newsdigest subscribers import` of N generated rows on PostgreSQL.

    .venv/bin/python bench/fanout/import_run.py [--rows 100000] [--db postgres|sqlite]

A scratch database is created and dropped (127.0.0.1:5432, user postgres, or BENCH_POSTGRES_URL).
Runs the import twice (new addresses, then the same file again) and prints rows/s, the CPU seconds
of the importing process (less sensitive to a shared machine's load than wall time) and its peak RSS.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "fanout"))

from run import scratch_database  # noqa: E402 - the fan-out bench's scratch-database helper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nd-import-"))
    with scratch_database(args.db, tmp):
        os.environ["NEWSDIGEST_IMPORT_MAX_ROWS"] = str(max(args.rows, 1))
        run(args.rows, tmp / "people.csv")


def run(rows: int, path: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from worker.models import Newsletter

    call_command("migrate", verbosity=0)
    Newsletter.objects.create(name="Bench", slug="bench")
    zones = ["", "Europe/Paris", "America/New_York", "Asia/Tokyo"]
    with path.open("w") as out:
        out.write("email,name,timezone\n")
        for i in range(rows):
            out.write(f"Reader.{i}@Example{i % 97}.com,Reader {i},{zones[i % 4]}\n")
    print(f"{rows} rows, {path.stat().st_size / 1e6:.1f} MB CSV")
    for label in ("first import", "same file again"):
        started, cpu = time.perf_counter(), _cpu()
        out = StringIO()
        call_command("subscribers", "import", str(path), "--newsletter", "bench", "--confirmed",
                     stdout=out, stderr=StringIO())
        elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
        # CPU seconds of this process are what a shared machine's load changes least.
        print(f"  {label}: {elapsed:6.1f} s = {rows / elapsed:8.0f} rows/s, {cpu:.1f} s CPU in this process "
              f"({out.getvalue().strip()})", flush=True)
    print(f"  peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
