"""Fan-out creation benchmark: the Delivery rows of one digest for N generated subscribers (PostgreSQL).

    .venv/bin/python bench/fanout/rows.py [--subscribers 100000 1000000] [--timed-share 0.1]
        [--lapsed 100000] [--runs 5] [--explain] [--database nd_x [--keep]]

Each size runs in a fresh process against a scratch database (127.0.0.1:5432, user postgres, or
BENCH_POSTGRES_URL): subscribers are generated server-side (generate_series), a share of them with a
preferred send time (those take the chunked Python path), then `deliver.fan_out` is timed: row
creation, and the nudge that lists the batches to publish. Peak RSS is the process's (ru_maxrss),
so equal figures at 100k and 1M mean memory does not grow with the list.

Then the sweeper (`deliver.sweep()`), `--runs` sweeps in each of four states, each sweep's time and
statement count, and the median time of each statement over the runs (`--explain`: the plan of each,
EXPLAIN (ANALYZE, BUFFERS) replayed in a rolled-back transaction):

- mid-send: every row queued with a message in flight (the held rows waiting for their send time);
  then with a backlog of `--lapsed` rows whose nudge has lapsed (each sweep re-nudges at most
  NEWSDIGEST_DELIVERY_NUDGE_LIMIT of them), right after the UPDATE that makes them lapse and after
  VACUUM ANALYZE of the delivery table;
- near the end: every row sent by one UPDATE, then 1,000 rows of a dead worker (sending, lease
  expired, in the SMTP conversation) put back before each sweep; first right after that 1M-row
  UPDATE, before any vacuum (its dead index entries are what the first sweep walks), then after
  VACUUM ANALYZE. Real sends mark rows one at a time, and autovacuum keeps up with them.
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "fanout"))

from run import scratch_database  # noqa: E402 - the fan-out bench's scratch-database helper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--timed-share", type=float, default=0.1)
    parser.add_argument("--lapsed", type=int, default=100_000,
                        help="mid-send: queued rows whose nudge has lapsed (the re-nudge backlog)")
    parser.add_argument("--runs", type=int, default=5, help="sweeps measured in each state")
    parser.add_argument("--explain", action="store_true", help="print each sweeper statement's plan")
    parser.add_argument("--database", help="PostgreSQL database name (default: a random scratch one)")
    parser.add_argument("--keep", action="store_true", help="leave the database in place afterwards")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    for n in args.subscribers:
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one", str(n)], check=True)


def one(args: argparse.Namespace) -> None:
    n, timed_share = args.one, args.timed_share
    tmp = Path(tempfile.mkdtemp(prefix="nd-rows-"))
    with scratch_database("postgres", tmp, name=args.database, keep=args.keep):
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.utils import timezone

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
        lease = fanout.nudge_lease(timezone.now())
        with connection.cursor():
            created = fanout._create_rows(Digest.objects.select_related("newsletter").get(pk=digest.pk), lease)
        rows_s = time.perf_counter() - started
        started = time.perf_counter()
        batches = deliver.nudge(digest.pk, lease=lease)  # as fan_out does: the rows were inserted nudged
        nudge_s = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n} subscribers ({timed_share:.0%} with a send time): {created} rows in {rows_s:.1f} s "
              f"({created / rows_s:,.0f} rows/s); nudge {len(batches)} batches in {nudge_s:.1f} s; "
              f"peak RSS {peak:.0f} MB (before the fan-out {before:.0f} MB)", flush=True)
        sweep_bench(digest.pk, args)


def sweep_bench(digest_id: int, args: argparse.Namespace) -> None:
    """deliver.sweep() mid-send and near the end, each right after the set-up's bulk UPDATE and after
    VACUUM ANALYZE (see the module docstring)."""
    from django.conf import settings
    from django.utils import timezone

    from worker.models import Delivery

    past = timezone.now() - timezone.timedelta(seconds=60)
    print(f"sweeper: {args.runs} sweeps per state, at most {settings.NEWSDIGEST_DELIVERY_NUDGE_LIMIT} rows "
          f"re-nudged per sweep; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    analyze()
    sweeps("mid-send, every message in flight (as the fan-out and its nudge left the table)", args)
    lapsed = Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.QUEUED,
                                     lease_until__isnull=False).order_by("pk").values("pk")[:args.lapsed]
    Delivery.objects.filter(pk__in=lapsed).update(lease_until=past)
    analyze()
    sweeps(f"mid-send, {args.lapsed:,} nudges lapsed, right after the UPDATE making them lapse", args)
    analyze(vacuum=True)
    sweeps(f"mid-send, {args.lapsed:,} nudges lapsed (fewer by now), after VACUUM ANALYZE", args)

    Delivery.objects.filter(digest_id=digest_id).update(status=Delivery.Status.SENT, lease_until=None,
                                                        sent_at=timezone.now())
    dead = Delivery.objects.filter(pk__in=Delivery.objects.filter(digest_id=digest_id).order_by("pk")
                                   .values("pk")[:1000])

    def dead_worker() -> None:
        dead.update(status=Delivery.Status.SENDING, lease_until=past, claimed_by="dead", message_id="<x>")

    dead_worker()
    analyze()  # autoanalyze would follow a 1M-row UPDATE within a minute; a vacuum is what is left out
    sweeps("near the end, right after the 1M-row UPDATE to sent (no vacuum yet)", args, before_each=dead_worker)
    analyze(vacuum=True)
    sweeps("near the end, after VACUUM ANALYZE", args, before_each=dead_worker)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def analyze(vacuum: bool = False) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"{'VACUUM ' if vacuum else ''}ANALYZE worker_delivery")


def sweeps(label: str, args: argparse.Namespace, before_each: Callable[[], object] = lambda: None) -> None:
    """`args.runs` sweeps: each one's time and statement count, then each statement's time in the first
    sweep and its median (statements compared by position: every sweep of one state runs the same ones)."""
    from django.db import connection, transaction

    from worker import deliver

    times, runs = [], []
    for _ in range(args.runs):
        before_each()
        statements: list[tuple[str, object, float]] = []

        def timed(execute, sql, params, many, context, statements=statements):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append((sql, params, (time.perf_counter() - started) * 1000))

        with connection.execute_wrapper(timed):
            started = time.perf_counter()
            deliver.sweep()
            times.append((time.perf_counter() - started) * 1000)
        runs.append(statements)
    counts = sorted({len(statements) for statements in runs})
    print(f"  {label}: sweeps {', '.join(f'{t:.1f}' for t in times)} ms (median {statistics.median(times):.1f} "
          f"ms), {'/'.join(map(str, counts))} statements", flush=True)
    same = [statements for statements in runs if len(statements) == len(runs[0])]
    print("    first sweep / median, per statement")
    for index, (sql, _, first) in enumerate(runs[0]):
        print(f"    {first:7.2f} / {statistics.median(s[index][2] for s in same):7.2f} ms  {short(sql)}")
    if args.explain:
        before_each()
        # The first sweep's statements again, in order, in a transaction rolled back: plans, actual rows and
        # the pages each touched (shared buffers hit + read: the work, whatever the load on the machine).
        pages = []
        with transaction.atomic(), connection.cursor() as cursor:
            for sql, params, _ in runs[0]:
                if sql.startswith(("SELECT", "UPDATE")):
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                    plan = [row[0] for row in cursor.fetchall()]
                    top = next((line for line in plan if "Buffers: shared" in line), "")
                    pages.append(sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", top)))
                    print(f"    {pages[-1]:>7} pages  {short(sql)}\n      " + "\n      ".join(plan))
            transaction.set_rollback(True)
        print(f"    replayed: {sum(pages):,} pages touched ({', '.join(map(str, pages))})")


def short(sql: str, width: int = 160) -> str:
    """A statement without its table prefixes and quotes, on one line."""
    for prefix in ('"worker_delivery".', '"worker_digest".', '"'):
        sql = sql.replace(prefix, "")
    return " ".join(sql.split())[:width]


if __name__ == "__main__":
    main()
