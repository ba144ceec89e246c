"""LLM seam throughput and rate limiting against the fake OpenAI server (real HTTP, fixed latency).

Threads call OpenAICompatibleEngine.summarize (what every Celery summarize task ends in) on 200 articles at
concurrency 1, 8 and 32; throughput is reported as a share of the ideal concurrency / latency.
The server runs in its own process, as a real one would: sharing our GIL would bill its CPU to us.
Then 32 threads hammer the server for 20 s with NEWSDIGEST_LLM_RPM=600 through the Redis-shared
bucket (a private redis-server) and the requests that arrived are counted: ideal is 200 (+1 burst).

    .venv/bin/python bench/bench_llm.py [--latency 0.2] [--articles 200] [--rpm 600] [--seconds 20]
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")
os.environ.setdefault("NEWSDIGEST_VAR_DIR", tempfile.mkdtemp(prefix="bench-llm-"))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from tests.helpers.fake_openai import ARTICLE, ARTICLE_TITLE, FakeOpenAI, answer, canned_summary  # noqa: E402
from tests.helpers.processes import redis_server  # noqa: E402
from worker import ratelimit  # noqa: E402
from worker.summarize import llm_client  # noqa: E402
from worker.summarize.engines import OpenAICompatibleEngine  # noqa: E402


class ServerProcess:
    """The fake server in a child process; `times()` fetches the arrival times it recorded."""

    def __init__(self, latency: float):
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_serve, args=(latency, child), daemon=True)
        self.process.start()
        self.url = self.conn.recv()

    def times(self) -> list[float]:
        self.conn.send("times")
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(10)


def _serve(latency: float, conn) -> None:
    server = FakeOpenAI().start()
    server.latency = latency
    server.handler = lambda body: answer(canned_summary())
    conn.send(server.url)
    while conn.recv() == "times":
        with server.lock:
            conn.send(list(server.times))
    server.stop()


def configure(url: str, rpm: int = 0, redis_url: str = "") -> None:
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = url, "bench"
    settings.NEWSDIGEST_LLM_MODEL = "bench-model"
    settings.NEWSDIGEST_LLM_RPM, settings.NEWSDIGEST_LLM_TPM = rpm, 0
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_url
    for cached in (ratelimit.redis_client, llm_client._buckets, llm_client._client):
        cached.cache_clear()


def one(_: int) -> int:
    return OpenAICompatibleEngine().summarize(ARTICLE_TITLE, ARTICLE).requests


def _init_worker(url: str) -> None:
    # A forked worker must not reuse the parent's client (its sockets) or buckets.
    configure(url)
    one(0)


def _share(job: tuple[int, int]) -> int:
    articles, threads = job
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, range(articles)))


def throughput(server: ServerProcess, articles: int, concurrency: int, latency: float,
               threads_per_process: int) -> None:
    """`concurrency` requests in flight, as processes x threads (one process up to
    `threads_per_process` threads, like a Celery prefork worker pool)."""
    processes = -(-concurrency // threads_per_process)
    threads = concurrency // processes
    jobs = [(articles // processes + (i < articles % processes), threads) for i in range(processes)]
    before = len(server.times())
    with multiprocessing.Pool(processes, initializer=_init_worker, initargs=(server.url,)) as pool:
        pool.map(abs, range(processes))  # every worker is up and warm before the clock starts
        warm = len(server.times()) - before
        started = time.perf_counter()
        requests = sum(pool.map(_share, jobs))
        elapsed = time.perf_counter() - started
    assert requests == articles == len(server.times()) - before - warm
    rate, ideal = articles / elapsed, concurrency / latency
    print(f"concurrency {concurrency:>2} ({processes} process x {threads} threads): {articles} articles in "
          f"{elapsed:6.2f} s = {rate:6.1f}/s, ideal {ideal:6.1f}/s, ratio {rate / ideal:.3f}")


def rate_limited(server: ServerProcess, rpm: int, seconds: float, redis_url: str) -> None:
    configure(server.url, rpm=rpm, redis_url=redis_url)
    ratelimit.redis_client().flushdb()
    stop = time.monotonic() + seconds
    started = time.time()
    before = len(server.times())

    def loop(_: int) -> None:
        while time.monotonic() < stop:
            one(0)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(loop, range(32)))
    arrived = [t for t in server.times()[before:] if t - started < seconds]
    expected = rpm / 60 * seconds
    print(f"RPM={rpm}, 32 threads, {seconds:g} s window: {len(arrived)} requests arrived "
          f"(limit {expected:.0f} + burst 1; ratio {len(arrived) / expected:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads-per-process", type=int, default=16)
    args = parser.parse_args()
    server = ServerProcess(args.latency)
    try:
        print(f"fake server latency {args.latency * 1000:.0f} ms; threads calling OpenAICompatibleEngine.summarize, "
              f"at most {args.threads_per_process} per process")
        for concurrency in args.concurrency:
            throughput(server, args.articles, concurrency, args.latency, args.threads_per_process)
        with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
            rate_limited(server, args.rpm, args.seconds, redis_url)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
