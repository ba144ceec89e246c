"""Ingest throughput: local feed files, and article pages served by a local HTTP server.

Each run gets a fresh SQLite file DB (migrated once); the work is split over 1 or 2 worker
processes (multiprocessing, spawn), each calling the real stage functions: feeds.parse_feed +
feeds.ingest_entry for feed files, articles.ingest_url (safe fetch, trafilatura, cleaning, dedup,
MinHash/LSH) for pages. Summaries are not queued: this measures ingestion only.

    .venv/bin/python bench/bench_ingest.py [--feeds 20 --entries 25 --pages 300]
"""

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ("council budget harbour bridge vote river port cranes ship minister election court ruling storm rain "
         "flood energy grid battery vaccine trial school teacher strike union wage price inflation market").split()


def setup_django(db_path: Path, migrate: bool = False) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "worker.settings"
    os.environ["NEWSDIGEST_VAR_DIR"] = str(db_path.parent)
    os.environ["NEWSDIGEST_FETCH_ALLOW"] = "127.0.0.1"
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def paragraphs(rng: random.Random, n: int = 6) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(45)).capitalize() + "." for _ in range(n)]


def write_feeds(folder: Path, count: int, entries: int, rng: random.Random) -> list[Path]:
    paths = []
    for f in range(count):
        items = "".join(
            f"<item><title>Story {f}-{e}</title><link>https://news.example/{f}/{e}</link><guid>{f}-{e}</guid>"
            f"<pubDate>Wed, 25 Nov 2026 0{e % 10}:00:00 GMT</pubDate><description><![CDATA["
            + "".join(f"<p>{p}</p>" for p in paragraphs(rng)) + "]]></description></item>"
            for e in range(entries))
        path = folder / f"feed{f}.xml"
        path.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>F{f}</title>'
                        f"<link>https://news.example/</link><description>d</description>{items}</channel></rss>")
        paths.append(path)
    return paths


def serve_pages(count: int, rng: random.Random) -> tuple[ThreadingHTTPServer, list[str]]:
    pages = {}
    for i in range(count):
        body = "".join(f"<p>{p}</p>" for p in paragraphs(rng))
        pages[f"/article/{i}"] = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Page {i} | Bench Times</title>"
            f"<meta name='author' content='Reporter {i % 7}'><script>track()</script></head><body>"
            f"<nav><a href='/'>Home</a></nav><article><h1>Page {i}</h1>{body}</article>"
            f"<footer>Back to top</footer></body></html>").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    return server, [f"{base}{path}" for path in pages]


def work(db_path: str, kind: str, targets: list[str]) -> tuple[int, float, float]:
    """One worker process: ingest its share; returns (articles stored, start, end) with the clock
    started after Django is set up, so process start-up is not counted."""
    setup_django(Path(db_path))
    from django.db import transaction

    from worker.ingest import articles, feeds
    from worker.models import Source

    source = Source.objects.get(name="bench")
    stored, started = 0, time.time()
    for target in targets:
        if kind == "feeds":
            entries, _ = feeds.parse_feed(Path(target).read_bytes())
            for entry in entries:
                with transaction.atomic():
                    stored += feeds.ingest_entry(entry, source).created
        else:
            with transaction.atomic():
                stored += articles.ingest_url(target, source).created
    return stored, started, time.time()


def run(kind: str, targets: list[str], processes: int, tmp: Path) -> tuple[int, float]:
    db = tmp / f"{kind}-{processes}.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:  # migrate in a child: the parent stays free of Django state
        pool.apply(prepare, (str(db),))
    shares = [targets[i::processes] for i in range(processes)]
    with ctx.Pool(processes) as pool:
        results = pool.starmap(work, [(str(db), kind, share) for share in shares])
    return sum(r[0] for r in results), max(r[2] for r in results) - min(r[1] for r in results)


def prepare(db_path: str) -> None:
    setup_django(Path(db_path), migrate=True)
    from worker.models import Source

    Source.objects.create(name="bench", kind=Source.Kind.FEED)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--entries", type=int, default=25)
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        feed_files = [str(p) for p in write_feeds(tmp, args.feeds, args.entries, rng)]
        server, urls = serve_pages(args.pages, rng)
        print(f"{os.cpu_count()} CPUs; fresh SQLite file DB per run; workers = spawned processes (clock starts after "
              "Django set-up); no summaries")
        print(f"{'workload':<28} {'procs':>5} {'articles':>8} {'seconds':>8} {'articles/s':>10}")
        try:
            for kind, targets, label in (("feeds", feed_files, f"feed files ({args.feeds}x{args.entries})"),
                                         ("pages", urls, f"HTTP pages ({args.pages})")):
                for processes in (1, 2):
                    stored, seconds = run(kind, targets, processes, tmp)
                    print(f"{label:<28} {processes:>5} {stored:>8} {seconds:>8.2f} {stored / seconds:>10.1f}",
                          flush=True)
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
