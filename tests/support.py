"""Real components for tests: a private redis-server, a recording SMTP server, Celery workers."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from django.db import connection

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO.parent / "shared" / "samples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def redis_server(tmp_path: Path):
    """A private redis-server on a free port, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        import pytest

        pytest.skip("redis-server is not installed (scripts/test installs it when run as root)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        wait_for(lambda: _pings(client), 10, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(client) -> bool:
    import redis

    try:
        return client.ping()
    except redis.ConnectionError:
        return False


class RecordingHandler:
    """Keeps every accepted message; `reply` (DATA) and `rcpt_reply` (RCPT) let a test answer with an
    SMTP error instead."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.reply = None
        self.rcpt_reply = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply is not None:
            return self.rcpt_reply(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.reply is not None:
            return self.reply(envelope)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server():
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def database_url() -> str:
    """The URL of the database this test uses, for subprocesses to share it."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host, port = s["HOST"] or "localhost", s["PORT"] or 5432
    return f"postgres://{s['USER']}:{s.get('PASSWORD') or ''}@{host}:{port}/{s['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "OPENAI_"))}
    env.update({"DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def newsdigest(*args: str, env: dict[str, str], timeout: float = 120, check: bool = True):
    result = subprocess.run([sys.executable, "-m", "worker", *args], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"newsdigest {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@contextmanager
def celery_worker(env: dict[str, str], log_path: Path, concurrency: int = 2, name: str = "w1"):
    """A real `newsdigest worker` in its own process group, stopped (hard) at the end."""
    proc = start_worker(env, log_path, concurrency, name)
    try:
        yield proc
    finally:
        kill_group(proc)


def start_worker(env: dict[str, str], log_path: Path, concurrency: int = 2, name: str = "w1") -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--concurrency", str(concurrency), "--pool", "prefork",
         "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for(lambda: b"ready." in log_path.read_bytes() or proc.poll() is not None, 60, what="celery worker")
    if proc.poll() is not None:
        raise AssertionError(f"worker exited:\n{log_path.read_text(errors='replace')[-3000:]}")
    return proc


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    proc.wait(30)


STORY_SEEDS = [
    ("Riverton opens the rebuilt Harbour Bridge after two years of repairs", "Riverton Gazette",
     "The Harbour Bridge reopened to traffic on Monday after a two-year repair that replaced its corroded "
     "steel cables. The city says the crossing is now rated for heavier lorries and adds a protected cycle lane.",
     "Freight that detoured through the ring road can use the shorter route again, cutting delivery times.",
     [{"name": "Mayor Elena Ruiz", "role": "mayor of Riverton", "action": "cut the ribbon at the reopening"},
      {"name": "Riverton Transport Authority", "role": "operator", "action": "ran the repair programme"}]),
    ("Late-stage trial finds new malaria vaccine cuts infections by 70 percent", "Health Desk",
     "A trial across four countries found that a two-dose malaria vaccine reduced infections in young children "
     "by about 70 percent over a year. Researchers reported no serious side effects.",
     "If regulators approve it, the vaccine could reach clinics before the next rainy season.",
     [{"name": "Dr Amina Okafor", "role": "lead investigator", "action": "presented the results"},
      {"name": "World Health Organization", "role": "regulator", "action": "will review the data"}]),
    ("Dock workers at Port Salvo strike over new shift rules", "Coastal Times",
     "Around 1,200 dock workers walked out at Port Salvo on Wednesday after the operator announced longer "
     "night shifts. Container ships are waiting outside the harbour.",
     "The port handles a fifth of the region's imports, so a long strike would delay goods in shops.",
     [{"name": "Port Salvo Authority", "role": "operator", "action": "announced the new shift rules"},
      {"name": "Dockers' Union", "role": "union", "action": "called the strike"}]),
    ("Twelve-year-old wins national chess championship", "Sports Weekly",
     "Twelve-year-old Leo Marsh became the youngest national chess champion on Sunday, beating three "
     "grandmasters over nine rounds in the capital.",
     "His win earns him a place at next year's world youth championship.",
     [{"name": "Leo Marsh", "role": "player", "action": "won the championship"}]),
    ("Solaris Grid to build Europe's largest battery storage site in Portugal", "Energy Report",
     "Solaris Grid will build a 1.2 gigawatt battery storage site near Sines in Portugal, the largest in "
     "Europe when it opens in 2028. The European Investment Bank will lend 400 million euros.",
     "Storing midday solar power for the evening peak could lower prices for about 600,000 homes.",
     [{"name": "Mette Norgaard", "role": "chief executive, Solaris Grid", "action": "announced the site"},
      {"name": "European Investment Bank", "role": "lender", "action": "agreed a 400 million euro loan"}]),
    ("City council approves new budget for public libraries", "Riverton Gazette",
     "The council voted on Thursday to raise the libraries budget by eight percent, keeping all branches open "
     "on Saturdays and extending evening hours at the central library.",
     "Libraries had warned that two branches would close without extra money.",
     [{"name": "Mayor Elena Ruiz", "role": "mayor of Riverton", "action": "backed the increase"}]),
]


def make_digest(stories: int = 6, **newsletter_fields):
    """A digest like the demo's: realistic stories, one clustered with a second source, one subscriber."""
    from datetime import UTC, datetime, timedelta

    from worker.models import (
        Article,
        Digest,
        DigestItem,
        Newsletter,
        Source,
        Story,
        Subscriber,
        Subscription,
        Summary,
    )

    fields = {"name": "Newsdigest Demo Daily", "slug": "demo", "postal_address": "1 Example Street, Riverton",
              "reply_to": "editor@example.com", **newsletter_fields}
    newsletter = Newsletter.objects.create(**fields)
    start = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    digest = Digest.objects.create(newsletter=newsletter, subject=f"{fields['name']}: the day's news",
                                   period_end=start + timedelta(hours=2), intro="Good morning. Here is the news.")
    for i in range(stories):
        headline, source_name, summary, why, actors = STORY_SEEDS[i % len(STORY_SEEDS)]
        if i >= len(STORY_SEEDS):
            headline = f"{headline} (update {i // len(STORY_SEEDS)})"
        source, _ = Source.objects.get_or_create(name=source_name)
        story = Story.objects.create()
        slug = f"story-{i}"
        article = Article.objects.create(
            source=source, story=story, url=f"https://news.example.com/{slug}", title=headline, text=summary,
            published_at=start - timedelta(minutes=37 * i), content_hash=f"hash-{newsletter.slug}-{i}",
            status=Article.Status.SUMMARIZED)
        if i == 1:
            wire, _ = Source.objects.get_or_create(name="Global Wire")
            Article.objects.create(source=wire, story=story, url=f"https://wire.example.org/{slug}",
                                   title=headline, text=summary, content_hash=f"hash-{newsletter.slug}-{i}-wire")
        item_summary = Summary.objects.create(
            article=article, content_hash=article.content_hash, engine="offline", headline=headline,
            summary=summary, why_it_matters=why, key_actors=actors)
        DigestItem.objects.create(digest=digest, article=article, summary=item_summary, position=i)
    subscriber = Subscriber.objects.create(email=f"ada@{newsletter.slug}.example.com", name="Ada Lovelace",
                                           status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=subscriber, newsletter=newsletter, status=Subscription.Status.ACTIVE)
    return digest


@contextmanager
def smtp_sink(record: Path, tempfail: float = 0.0, drop: float = 0.0, seed: int = 1):
    """tests/smtp_sink.py in its own process; yields its port. Accepted messages are lines in `record`."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "smtp_sink.py"), "--port", str(port), "--record", str(record),
         "--tempfail", str(tempfail), "--drop", str(drop), "--seed", str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        if proc.stdout.readline().strip() != "ready":
            raise AssertionError(f"smtp sink did not start:\n{proc.stdout.read()}")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def sink_record(record: Path) -> list[tuple[str, str]]:
    """(Message-ID, recipient) per accepted message, in order."""
    if not record.exists():
        return []
    return [tuple(line.split("\t")) for line in record.read_text().splitlines() if "\t" in line]


def approved_digest(active: int, *, unsubscribed: int = 0, bounced: int = 0, domain: str = "example.com"):
    """A newsletter with an approved digest and `active` confirmed subscribers (user{i}@domain),
    plus unsubscribed ones (unsub{i}@) and bounced ones (bounced{i}@). Returns the digest."""
    from worker.models import Digest, Newsletter, Subscriber, Subscription

    newsletter = Newsletter.objects.create(name="Morning Brief", slug=f"brief-{os.urandom(4).hex()}",
                                           from_email="brief@news.example")
    groups = [("user", active, Subscriber.Status.ACTIVE, Subscription.Status.ACTIVE),
              ("unsub", unsubscribed, Subscriber.Status.ACTIVE, Subscription.Status.UNSUBSCRIBED),
              ("bounced", bounced, Subscriber.Status.BOUNCED, Subscription.Status.ACTIVE)]
    for prefix, count, status, sub_status in groups:
        people = Subscriber.objects.bulk_create(
            [Subscriber(email=f"{prefix}{i}.{newsletter.pk}@{domain}", name=f"Reader {i}", status=status)
             for i in range(count)], batch_size=1000)
        Subscription.objects.bulk_create(
            [Subscription(subscriber=p, newsletter=newsletter, status=sub_status) for p in people], batch_size=1000)
    return Digest.objects.create(newsletter=newsletter, subject="Today's brief", status=Digest.Status.APPROVED)


@contextmanager
def http_server(routes: dict):
    """A real HTTP server on 127.0.0.1:free port in a thread; yields (base_url, requests seen).

    routes: path -> (status, headers, body), or a callable taking the request handler and
    returning that triple; a path with a query falls back to its route without the query.
    Unknown paths answer 404. Each request is recorded as (path, headers dict)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            seen.append((self.path, dict(self.headers)))
            route = routes.get(self.path) or routes.get(self.path.split("?")[0]) or (
                404, {"Content-Type": "text/plain"}, b"not found")
            status, headers, body = route(self) if callable(route) else route
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def summarized_article(source, title: str, *, published=None, story=None, text: str = "", **summary_fields):
    """An article with a stored offline summary, ready for a digest (tests of scheduling and the desk)."""
    import hashlib

    from worker.models import Article, Summary

    text = text or f"{title}. The full account of it."
    article = Article.objects.create(
        source=source, story=story, title=title, text=text, status=Article.Status.SUMMARIZED,
        content_hash=hashlib.sha256(f"{title}|{text}".encode()).hexdigest(), published_at=published,
        url=f"https://news.example/{hashlib.sha1(title.encode()).hexdigest()[:10]}",
    )
    Summary.objects.create(article=article, content_hash=article.content_hash, engine="offline",
                           headline=title, **({"summary": f"Summary of {title}."} | summary_fields))
    return article
