"""Fan-out creation benchmark: the Delivery rows of one digest for N generated subscribers (PostgreSQL).

    .venv/bin/python bench/fanout/rows.py [--subscribers 100000 1000000] [--timed-share 0.1]

Each size runs in a fresh process against a scratch database (127.0.0.1:5432, user postgres, or
BENCH_POSTGRES_URL): subscribers are generated server-side (generate_series), a share of them with a
preferred send time (those take the chunked Python path), then `deliver.fan_out` is timed: row
creation, and the nudge that lists the batches to publish. Peak RSS is the process's (ru_maxrss),
so equal figures at 100k and 1M mean memory does not grow with the list.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "fanout"))

from run import scratch_database  # noqa: E402 - the fan-out bench's scratch-database helper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--timed-share", type=float, default=0.1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.timed_share)
        return
    for n in args.subscribers:
        subprocess.run([sys.executable, __file__, "--one", str(n), "--timed-share", str(args.timed_share)],
                       check=True)


def one(n: int, timed_share: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nd-rows-"))
    with scratch_database("postgres", tmp):
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from worker import deliver, render
        from worker.deliver import fanout
        from worker.models import Digest, Newsletter

        call_command("migrate", verbosity=0)
        newsletter = Newsletter.objects.create(name="Bench", slug="bench")
        every = max(1, round(1 / timed_share)) if timed_share else 0
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO worker_subscriber (email, name, status, timezone, format, send_time, paused, "
                "soft_bounces, created_at) SELECT 'r' || i || '@example.com', 'Reader ' || i, 'active', "
                "'Europe/Paris', 'html', CASE WHEN %s > 0 AND i %% %s = 0 THEN time '23:59' END, false, 0, now() "
                "FROM generate_series(1, %s) i", [every, max(every, 1), n])
            cursor.execute("INSERT INTO worker_subscription (subscriber_id, newsletter_id, status, created_at) "
                           "SELECT id, %s, 'active', now() FROM worker_subscriber", [newsletter.pk])
            cursor.execute("ANALYZE")
        digest = Digest.objects.create(newsletter=newsletter, subject="Bench", status=Digest.Status.APPROVED)
        render.ensure_rendered(digest)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        deliver.begin_send(digest.pk)
        started = time.perf_counter()
        with connection.cursor():
            created = fanout._create_rows(Digest.objects.select_related("newsletter").get(pk=digest.pk))
        rows_s = time.perf_counter() - started
        started = time.perf_counter()
        batches = deliver.nudge(digest.pk)
        nudge_s = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n} subscribers ({timed_share:.0%} with a send time): {created} rows in {rows_s:.1f} s "
              f"({created / rows_s:,.0f} rows/s); nudge {len(batches)} batches in {nudge_s:.1f} s; "
              f"peak RSS {peak:.0f} MB (before the fan-out {before:.0f} MB)")
        sweep_bench(digest.pk, explain=n >= 1_000_000)


def sweep_bench(digest_id: int, explain: bool) -> None:
    """deliver.sweep() mid-send (every row queued, a message in flight) and near the end (nearly all
    sent, 1,000 rows of a dead worker), with each query's time and, for 1M rows, its plan."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from worker import deliver
    from worker.models import Delivery

    def measure(label: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE worker_delivery")
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            deliver.sweep()
            elapsed = time.perf_counter() - started
        slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
        print(f"  sweep {label}: {elapsed * 1000:.0f} ms, {len(captured)} queries, slowest "
              f"{float(slowest['time']) * 1000:.0f} ms")
        if explain:
            for query in captured.captured_queries:
                if query["sql"].startswith(("SELECT", "UPDATE")):
                    with connection.cursor() as cursor:
                        cursor.execute("EXPLAIN " + query["sql"])
                        plan = [row[0].strip() for row in cursor.fetchall()]
                    scans = [step for step in plan if "Scan" in step or "Index Cond" in step]
                    print(f"    {query['sql'][:110]}...\n      " + "\n      ".join(scans[:4]))

    measure("mid-send")
    past = timezone.now() - timezone.timedelta(seconds=60)
    Delivery.objects.filter(digest_id=digest_id).update(status=Delivery.Status.SENT, lease_until=None,
                                                        sent_at=timezone.now())
    dead = list(Delivery.objects.filter(digest_id=digest_id).order_by("pk").values_list("pk", flat=True)[:1000])
    Delivery.objects.filter(pk__in=dead).update(status=Delivery.Status.SENDING, lease_until=past,
                                                claimed_by="dead", message_id="<x>")
    measure("near the end")


if __name__ == "__main__":
    main()
