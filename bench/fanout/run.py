"""Fan-out benchmark: Newsdigest's delivery (real Celery workers, claims, leases, one Delivery row
per message) against a plain smtplib loop over one connection, both sending the same ~20 KB
messages to an SMTP sink in another process.

    .venv/bin/python bench/fanout/run.py [--subscribers 10000 100000] [--db postgres|sqlite]
                                         [--sink aiosmtpd|aiosmtpd-pipelining|smtp-sink] [--repeat 3]

PostgreSQL (127.0.0.1:5432, user postgres; a scratch database is created and dropped) is the
default: with two writes per message, SQLite's single writer would be what is measured.
Prints msgs/s, the ratio to the baseline, the 1 -> 2 worker speed-up, peak RSS per worker, and the
CPU each process family spent per message in each phase (read from /proc), so that a phase limited
by one process (a sink at 100% of a core) is told apart from one waiting on round trips. The baseline
runs before and after each worker run, and each run is compared with the mean of the two around it:
the machine's speed drifts over minutes. A send's time is the database's (send started -> digest sent),
with where it went: fan-out until the first message, sending, finishing.

The sink: `aiosmtpd` (tests/helpers/smtp_sink.py, Python, one process; `aiosmtpd-pipelining` offers
PIPELINING, which the workers use and the smtplib loop cannot) or `smtp-sink`, Postfix's C test server for
measuring SMTP clients (Debian package postfix; it offers PIPELINING), which costs the shared 2 cores far
less per message, so that what is measured is the sender rather than the sink.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--baseline-messages", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="rounds per size; with more than one, medians too")
    parser.add_argument("--sink", choices=["aiosmtpd", "aiosmtpd-pipelining", "smtp-sink"], default="aiosmtpd")
    parser.add_argument("--compare-commits", action="store_true",
                        help="also run 1 worker with every commit durable (NEWSDIGEST_DELIVERY_RELAXED_COMMIT=0)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nd-fanout-"))
    with scratch_database(args.db, tmp):
        os.environ["NEWSDIGEST_SEND_BATCH_SIZE"] = str(args.batch_size)
        run(args, tmp)


@contextmanager
def scratch_database(db: str, tmp: Path, name: str | None = None, keep: bool = False) -> Iterator[str]:
    """A throw-away database for one bench run (PostgreSQL: created and dropped; SQLite: a file in tmp),
    named in the environment for this process and the workers it starts; yields its URL.

    `name` picks the PostgreSQL database (one left by an earlier run is dropped first), `keep` leaves
    it in place afterwards, so its tables can be examined (EXPLAIN by hand)."""
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = name or f"nd_bench_{uuid.uuid4().hex[:8]}"
    if db == "postgres":
        if name:
            _psql(admin_url, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        _psql(admin_url, f"CREATE DATABASE {db_name}")
        db_url = admin_url.rsplit("/", 1)[0] + f"/{db_name}"
    else:
        db_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    os.environ.update(DATABASE_URL=db_url, NEWSDIGEST_VAR_DIR=str(tmp / "var"),
                      DJANGO_SETTINGS_MODULE="worker.settings")
    try:
        yield db_url
    finally:
        if db == "postgres" and not keep:
            from django.db import connections

            connections.close_all()
            _psql(admin_url, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def _psql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def postfix_sink() -> Iterator[int]:
    """Postfix's smtp-sink on a free port (it drops privileges to `nobody` when run as root); yields the port."""
    from tests.helpers.processes import free_port, wait_for

    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        sys.exit("smtp-sink not found: install Debian's postfix package, or use --sink aiosmtpd")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([binary, *user, f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _accepts(port) or proc.poll() is not None, 10, what="smtp-sink")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def run(args, tmp: Path) -> None:
    from tests.helpers.mail import smtp_sink
    from tests.helpers.processes import redis_server

    sink = (postfix_sink() if args.sink == "smtp-sink"
            else smtp_sink(tmp / "sink.tsv", pipelining=args.sink == "aiosmtpd-pipelining"))
    with redis_server(tmp) as redis_url, sink as port:
        os.environ.update(REDIS_URL=redis_url, EMAIL_URL=f"smtp://127.0.0.1:{port}")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        print(f"database: {args.db}; batch size {args.batch_size}; sink: {args.sink} in its own process")
        # (label, worker processes, extra environment); the durable-commit run measures what
        # NEWSDIGEST_DELIVERY_RELAXED_COMMIT buys (PostgreSQL only).
        runs = [("1 worker", 1, {}), ("2 workers", 2, {})]
        if args.db == "postgres" and args.compare_commits:
            runs.insert(1, ("1 worker, every commit durable", 1, {"NEWSDIGEST_DELIVERY_RELAXED_COMMIT": "0"}))
        for n in args.subscribers:
            rounds = [one_round(n, runs, args, env, tmp, port) for _ in range(args.repeat)]
            if args.repeat > 1:
                ratios, speedups = zip(*rounds, strict=True)
                print(f"  median of {args.repeat} rounds: 1 worker {statistics.median(ratios):.2f}x baseline "
                      f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}); 1 -> 2 workers "
                      f"{statistics.median(speedups):.2f}x (rounds {', '.join(f'{r:.2f}' for r in speedups)})")


def one_round(n: int, runs: list, args, env: dict, tmp: Path, port: int) -> tuple[float, float]:
    """The baseline before and after each worker run (the machine's speed drifts by 5-20% over minutes, so
    each run is compared with the mean of the two baselines around it); returns (1 worker / its baselines,
    1 -> 2 workers)."""
    digest_ids = [_make_digest(n) for _ in runs]
    count = min(n, args.baseline_messages)
    with cpu_use(count) as cpu:
        bases = [baseline(digest_ids[0], count, port)]
    print(f"\n{n} subscribers, message {_message_size(digest_ids[0]) / 1024:.1f} KB")
    print(f"  baseline smtplib loop, 1 connection: {bases[0]:8.1f} msgs/s")
    print(f"    {cpu.line()}")
    rates, ratios = {}, {}
    for (label, workers, extra), digest_id in zip(runs, digest_ids, strict=True):
        rate, rss, cpu = fan_out(digest_id, n, workers, {**env, **extra}, tmp)
        bases.append(baseline(digest_ids[0], count, port))
        rates[label], ratios[label] = rate, rate / statistics.mean(bases[-2:])
        print(f"  {label}: {rate:8.1f} msgs/s = {ratios[label]:.2f} x the baselines around it "
              f"({rate / bases[-2]:.2f} x the one before); peak RSS per worker "
              f"{', '.join(f'{r:.0f} MB' for r in rss)}", flush=True)
        print(f"    {cpu.line()}")
        print(f"    {cpu.timeline}")
        print(f"  baseline again: {bases[-1]:8.1f} msgs/s")
    speedup = rates["2 workers"] / rates["1 worker"]
    print(f"  1 -> 2 workers: {speedup:.2f}x", flush=True)
    return ratios["1 worker"], speedup


def _make_digest(n: int) -> int:
    from django.utils import timezone

    from tests.helpers.factories import approved_digest
    from worker.models import Digest

    digest = approved_digest(n)
    filler = "".join(f"<p>Paragraph {i}: {'lorem ipsum dolor sit amet ' * 6}</p>\n" for i in range(100))
    html = f"<html><body><p>Hello %%ND_NAME%%</p>{filler}<a href='%%ND_UNSUBSCRIBE%%'>unsubscribe</a></body></html>"
    text = "Hello %%ND_NAME%%\n" + "lorem ipsum dolor sit amet " * 100 + "\n%%ND_UNSUBSCRIBE%%\n"
    Digest.objects.filter(pk=digest.pk).update(html_template=html, text_template=text, rendered_at=timezone.now())
    return digest.pk


def _message_size(digest_id: int) -> int:
    from worker import deliver, render
    from worker.models import Digest

    digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
    subscriber = digest.newsletter.subscriptions.first().subscriber
    return len(deliver.message_bytes(deliver.build_message(digest, subscriber, render.ensure_rendered(digest))))


def baseline(digest_id: int, count: int, port: int) -> float:
    """The same messages, built and serialised the way the workers do it (`deliver.build_message`,
    `deliver.message_bytes`), over one smtplib connection: no database, no broker."""
    import smtplib

    from worker import deliver, render
    from worker.models import Digest

    digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
    rendered = render.ensure_rendered(digest)
    people = [s.subscriber for s in digest.newsletter.subscriptions.select_related("subscriber")[:count]]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for person in people:
            message = deliver.build_message(digest, person, rendered)
            smtp.sendmail(message.from_email, message.recipients(), deliver.message_bytes(message))
    return len(people) / (time.perf_counter() - started)


def fan_out(digest_id: int, n: int, workers: int, env: dict, tmp: Path) -> tuple[float, list[float], "CpuUse"]:
    from tests.helpers.processes import kill_group, start_worker
    from worker import deliver, tasks
    from worker.models import Digest

    procs = [start_worker(env, tmp / f"w{workers}-{i}.log", 1, f"b{workers}-{i}") for i in range(workers)]
    try:
        # Measured while the workers run, so their CPU is read before they are killed.
        with cpu_use(n) as cpu:
            started = time.perf_counter()
            deliver.begin_send(digest_id)
            tasks.start_send.delay(digest_id)
            peaks = {p.pid: 0.0 for p in procs}
            while Digest.objects.filter(pk=digest_id).values_list("status", flat=True).get() != Digest.Status.SENT:
                for proc in procs:
                    peaks[proc.pid] = max(peaks[proc.pid], _group_peak_rss(proc.pid))
                time.sleep(0.5)
            polled = time.perf_counter() - started
        for proc in procs:
            peaks[proc.pid] = max(peaks[proc.pid], _group_peak_rss(proc.pid))
        progress = deliver.progress(digest_id)
        assert progress["sent"] == n, progress
        elapsed, cpu.timeline = _timeline(digest_id, n, polled)
        return n / elapsed, list(peaks.values()), cpu
    finally:
        for proc in procs:
            kill_group(proc)


def _timeline(digest_id: int, count: int, polled: float) -> tuple[float, str]:
    """The send's duration by the database's clock (send started -> digest sent, not when this bench's polling
    noticed), and where it went: before the first message (fan-out, first claim), the sending itself (first
    to last `sent_at`), and after the last (finishing the digest)."""
    from django.db.models import Max, Min

    from worker.models import Delivery, Digest

    started, done = Digest.objects.values_list("send_started_at", "sent_at").get(pk=digest_id)
    span = Delivery.objects.filter(digest_id=digest_id).aggregate(first=Min("sent_at"), last=Max("sent_at"))
    elapsed = (done - started).total_seconds()
    before = (span["first"] - started).total_seconds()
    sending = (span["last"] - span["first"]).total_seconds()
    return elapsed, (f"timeline: {elapsed:.2f} s from start to sent ({polled:.2f} s as polled): first message "
                     f"after {before:.2f} s, then {sending:.2f} s of sending ({(count - 1) / sending:.1f} msgs/s), "
                     f"{elapsed - before - sending:.2f} s to finish")


class CpuUse:
    """CPU seconds per process family over one phase, from /proc (processes alive at both ends)."""

    FAMILIES = ("bench", "workers", "sink", "postgres", "redis")

    def __init__(self, messages: int):
        self.messages = messages
        self.started = time.perf_counter()
        self.before = _cpu_by_process()
        self.spent: dict[str, float] = {}
        self.wall = 0.0
        self.timeline = ""

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.started
        after = _cpu_by_process()
        self.spent = dict.fromkeys(self.FAMILIES, 0.0)
        for pid, (family, seconds) in after.items():
            if family in self.spent:
                self.spent[family] += seconds - self.before.get(pid, (family, 0.0))[1]

    def line(self) -> str:
        per_msg = ", ".join(f"{family} {1000 * s / self.messages:.3f}" for family, s in self.spent.items())
        return f"CPU ms/msg: {per_msg}; cores busy {sum(self.spent.values()) / self.wall:.2f} of {os.cpu_count()}"


@contextmanager
def cpu_use(messages: int) -> Iterator[CpuUse]:
    use = CpuUse(messages)
    try:
        yield use
    finally:
        use.stop()


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (family, user+system CPU seconds) for the processes this bench measures."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        family = _family(int(entry.name), cmdline)
        if family:
            # fields[11], fields[12]: utime, stime (stat fields 14 and 15, counted after the command name)
            found[int(entry.name)] = (family, (int(fields[11]) + int(fields[12])) / tick)
    return found


def _family(pid: int, cmdline: str) -> str | None:
    if pid == os.getpid():
        return "bench"
    if "smtp_sink.py" in cmdline or "smtp-sink" in cmdline:
        return "sink"
    if "-m worker worker" in cmdline or "celery" in cmdline:
        return "workers"
    program = cmdline.split(" ", 1)[0]
    if program.startswith("postgres") or program.endswith("/postgres"):
        return "postgres"
    if program.endswith("redis-server"):
        return "redis"
    return None


def _group_peak_rss(pgid: int) -> float:
    """The largest VmHWM (peak resident set) among the processes of one worker's process group, in MB."""
    peak = 0.0
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) / 1024)
    return peak


if __name__ == "__main__":
    main()
