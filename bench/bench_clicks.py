"""Click redirect under load on loopback: gunicorn serving /r/<token>, an asyncio keep-alive client.

For each buffer (Redis list, or one INSERT into PendingClick without Redis) it prints requests/s and
latency percentiles of the redirect, then how fast `clicks.flush` turns the buffered hits into counts.
A short in-process figure (the view alone, no HTTP) is printed first. Everything is local: a private
redis-server, a scratch database, a bounded number of requests.

    .venv/bin/python bench/bench_clicks.py [--requests 20000] [--concurrency 32] [--workers 2] [--threads 8]
                                          [--db sqlite|postgres] [--buffer redis db]
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _percentile(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))]


async def _connection(port: int, path: str, agent: str, count: int, latencies: list[float],
                      errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\n\r\n"
            started = time.perf_counter()
            writer.write(request.encode())
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(("HTTP/1.1 302", "HTTP/1.1 301")):
                errors.append(head.split("\r\n", 1)[0])
            if "connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def load(port: int, paths: list[str], requests: int, concurrency: int) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    per = requests // concurrency

    async def run() -> None:
        # Each connection is its own client (agent) keeping to one link: a reader's pattern, not a
        # scanner's burst, so the flush has real reader clicks to count.
        await asyncio.gather(*(_connection(port, paths[i % len(paths)], f"{AGENT} c{i}", per, latencies, errors)
                               for i in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started, latencies, errors


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--buffer", choices=["redis", "db"], nargs="+", default=["redis", "db"])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nd-clicks-"))
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = f"nd_bench_clicks_{uuid.uuid4().hex[:8]}"
    if args.db == "postgres":
        import psycopg

        with psycopg.connect(admin_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db_name}")
        db_url = admin_url.rsplit("/", 1)[0] + f"/{db_name}"
    else:
        db_url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    for key in ("EMAIL_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(key, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="worker.settings", NEWSDIGEST_VAR_DIR=str(scratch / "var"),
                      DATABASE_URL=db_url, SECRET_KEY="bench-clicks-" + uuid.uuid4().hex + uuid.uuid4().hex)
    try:
        run(args, scratch, db_url)
    finally:
        if args.db == "postgres":
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def run(args: argparse.Namespace, scratch: Path, db_url: str) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import RequestFactory

    from tests.helpers.factories import make_digest
    from tests.helpers.processes import free_port, redis_server
    from worker import clicks, render
    from worker.models import ClickCount, Digest, PendingClick, Subscriber
    from worker.web import clicks as web_clicks

    call_command("migrate", verbosity=0)
    digest = make_digest(12)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT)
    reader = Subscriber.objects.get()
    email = render.personalise(render.render_digest(digest), digest, reader,
                               sent_at=datetime.now(UTC) - timedelta(hours=1))
    paths = sorted({urlsplit(u).path + "?" + urlsplit(u).query
                    for u in clicks_links(email.text, settings.SITE_URL)})
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; db {args.db}; "
          f"{len(paths)} distinct links; gunicorn gthread {args.workers}x{args.threads}; "
          f"{args.requests} requests over {args.concurrency} keep-alive connections")
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(scratch)) if "redis" in args.buffer else ""
        factory = RequestFactory()
        for buffer in args.buffer:
            settings.REDIS_URL = redis_url if buffer == "redis" else ""
            # The view alone, in process: what one redirect costs before any HTTP.
            n = 2000
            started, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                path = paths[i % len(paths)]
                web_clicks.follow(factory.get(path, HTTP_USER_AGENT=AGENT), path.split("/r/")[1].split("?")[0])
            view_us = (time.perf_counter() - started) / n * 1e6
            view_cpu_us = (time.process_time() - cpu) / n * 1e6
            clicks.flush(now=time.time() + 60)
            ClickCount.objects.all().delete()

            port = free_port()
            env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DATABASE_URL": db_url}
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "worker.wsgi:application", "-b", f"127.0.0.1:{port}",
                 "-w", str(args.workers), "-k", "gthread", "--threads", str(args.threads), "--keep-alive", "30",
                 "--log-level", "warning"], cwd=REPO, env=env)
            try:
                _wait_port(port, proc)
                load(port, paths, min(2000, args.requests), args.concurrency)  # warm-up
                clicks.flush(now=time.time() + 60)
                ClickCount.objects.all().delete()
                if buffer == args.buffer[0]:
                    # The same stack's cheapest redirect (the home page's RedirectView): no signing, no counting.
                    base_elapsed, base_latencies, _ = load(port, ["/"], args.requests, args.concurrency)
                    print(f"[baseline] Django RedirectView on the same server: "
                          f"{len(base_latencies) / base_elapsed:,.0f} redirects/s, "
                          f"p50 {statistics.median(base_latencies) * 1000:.1f} ms")
                elapsed, latencies, errors = load(port, paths, args.requests, args.concurrency)
            finally:
                proc.terminate()
                proc.wait(30)
            done = len(latencies)
            print(f"[{buffer} buffer] view alone {view_us:.0f} us/redirect ({view_cpu_us:.0f} us CPU); "
                  f"over HTTP: {done / elapsed:,.0f} redirects/s, "
                  f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
                  f"p95 {_percentile(latencies, 0.95) * 1000:.1f} ms, p99 {_percentile(latencies, 0.99) * 1000:.1f} ms,"
                  f" {len(errors)} errors")
            waiting = clicks.pending()
            started = time.perf_counter()
            report = clicks.flush(limit=waiting + 1, now=time.time() + 60)
            flush_s = time.perf_counter() - started
            counted = sum(ClickCount.objects.values_list("clicks", flat=True))
            print(f"[{buffer} buffer] flush: {report.read:,} hits in {flush_s:.2f} s ({report.read / flush_s:,.0f} "
                  f"hits/s); counted {counted:,} reader clicks, {report.filtered:,} filtered; "
                  f"{PendingClick.objects.count()} left in the table buffer")
            ClickCount.objects.all().delete()


def clicks_links(text: str, site: str) -> list[str]:
    import re

    return re.findall(re.escape(site) + r"/r/\S+", text)


if __name__ == "__main__":
    main()
