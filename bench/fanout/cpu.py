"""CPU cost of the send loop, measured so that machine load does not move it: CPU seconds per message
in this process (time.process_time) for the bare smtplib loop and for `deliver.send_batch`, run
in-process on the same kind of digest in the same run, plus SQL statements and rate-limit round
trips per batch.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nd_i18 .venv/bin/python bench/fanout/cpu.py \
        [--subscribers 2000] [--batch-size 200] [--rounds 3] [--profile 25]

The database named in DATABASE_URL (PostgreSQL, its name starting "nd_") is dropped and created
afresh. An aiosmtpd sink runs in its own process and a private redis-server holds the rate-limit
buckets; the limits are set high enough never to wait, so what is measured is what taking the
tokens costs. The wall-clock comparison with real workers is bench/fanout/run.py; this one
answers "how much CPU does the worker spend per message beyond building and sending it".
"""

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="repeat each measurement, report the best")
    parser.add_argument("--rate", type=float, default=1e9,
                        help="NEWSDIGEST_SEND_RATE and _PER_DOMAIN (0 = no rate limits, no Redis calls)")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions of one worker pass")
    args = parser.parse_args()
    db_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nd_i18")
    name = db_url.rsplit("/", 1)[1]
    if not (db_url.startswith("postgres") and name.startswith("nd_")):
        sys.exit("DATABASE_URL must name a PostgreSQL database called nd_*: it is dropped and created afresh")
    import psycopg

    with psycopg.connect(db_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    tmp = Path(tempfile.mkdtemp(prefix="nd-cpu-"))
    from tests.helpers.mail import smtp_sink
    from tests.helpers.processes import redis_server

    with redis_server(tmp) as redis_url, smtp_sink(tmp / "sink.tsv") as port:
        os.environ.update(
            DATABASE_URL=db_url, NEWSDIGEST_VAR_DIR=str(tmp / "var"), DJANGO_SETTINGS_MODULE="worker.settings",
            REDIS_URL=redis_url, EMAIL_URL=f"smtp://127.0.0.1:{port}", NEWSDIGEST_SEND_BATCH_SIZE=str(args.batch_size),
            NEWSDIGEST_SEND_RATE=str(args.rate), NEWSDIGEST_SEND_RATE_PER_DOMAIN=str(args.rate))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        measure(args, port)


def measure(args, port: int) -> None:
    from run import _make_digest  # bench/fanout/run.py: the same ~20 KB digest

    n = args.subscribers
    print(f"{n} subscribers per pass, batch size {args.batch_size}, best of {args.rounds}; "
          f"rate limits {'on (Redis)' if args.rate else 'off'}; CPU = this process only")
    base = min(baseline_cpu(_make_digest(n), port) for _ in range(args.rounds))
    print(f"  bare smtplib loop:   {base * 1e3:6.3f} ms CPU/msg (build + send, reference)")
    passes = [worker_cpu(_make_digest(n)) for _ in range(args.rounds)]
    cpu, statements, redis_calls, batches = min(passes)
    print(f"  deliver.send_batch:  {cpu * 1e3:6.3f} ms CPU/msg = {base / cpu:.2f}x the loop's rate "
          f"(CPU-bound ceiling); overhead {(cpu - base) * 1e3:.3f} ms/msg")
    print(f"  per batch of {args.batch_size}: {statements / batches:.1f} SQL statements, "
          f"{redis_calls / batches:.1f} Redis round trips")
    if args.profile:
        profiler = cProfile.Profile(time.process_time)  # CPU, not waits
        digest_id = _make_digest(n)
        profiler.enable()
        worker_cpu(digest_id)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.dump_stats(Path(tempfile.gettempdir()) / "nd-cpu.prof")
        stats.sort_stats("cumulative").print_stats("worker/", args.profile)


def baseline_cpu(digest_id: int, port: int) -> float:
    """bench/fanout/run.py's baseline: the same messages, built and serialised the same way, over one connection."""
    import smtplib

    from worker import deliver, render
    from worker.models import Digest

    digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
    rendered = render.ensure_rendered(digest)
    people = [s.subscriber for s in digest.newsletter.subscriptions.select_related("subscriber")]
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.process_time()
        for person in people:
            message = deliver.build_message(digest, person, rendered)
            smtp.sendmail(message.from_email, message.recipients(), deliver.message_bytes(message))
        return (time.process_time() - started) / len(people)


def worker_cpu(digest_id: int) -> tuple[float, int, int, int]:
    """(CPU s/msg, SQL statements, Redis calls, batches) of sending a fanned-out digest in this process."""
    from django.db import connection
    from redis.client import Redis

    from worker import deliver, ratelimit
    from worker.models import Digest

    deliver.begin_send(digest_id)
    batches = deliver.fan_out(digest_id)
    deliver.close_connection()  # each pass opens its own connection, as a fresh worker would
    counts = {"sql": 0, "redis": 0}

    def count_sql(execute, sql, params, many, context):
        counts["sql"] += 1
        return execute(sql, params, many, context)

    client = ratelimit.redis_client()
    original = Redis.execute_command

    def count_redis(self, *args, **kwargs):
        if self is client:
            counts["redis"] += 1
        return original(self, *args, **kwargs)

    Redis.execute_command = count_redis
    try:
        with connection.execute_wrapper(count_sql):
            started = time.process_time()
            sent = sum(deliver.send_batch(batch).counts["sent"] for batch in batches)
            elapsed = time.process_time() - started
    finally:
        Redis.execute_command = original
    assert Digest.objects.get(pk=digest_id).status == Digest.Status.SENT, "digest not finished"
    assert sent == sum(map(len, batches)), (sent, sum(map(len, batches)))
    return elapsed / sent, counts["sql"], counts["redis"], len(batches)


if __name__ == "__main__":
    main()
