"""The summarize stage end to end: database, cache, costs, CLI, Celery task, shared rate limit."""

import itertools
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.helpers.fake_openai import (
    ARTICLE,
    ARTICLE_TITLE,
    answer,
    canned_summary,
    error,
)
from tests.helpers.paths import REPO
from worker import tasks
from worker.models import Article, Digest, DigestItem, Newsletter
from worker.summarize import digest_token_totals, llm_client, summarize_article
from worker.summarize.errors import EngineTransientError

pytestmark = pytest.mark.django_db


def make_article(suffix: str = "1") -> Article:
    return Article.objects.create(title=ARTICLE_TITLE, text=ARTICLE + f"\nEdition {suffix}.\n",
                                  content_hash=f"hash-{suffix}")


def test_summary_is_stored_with_model_prompt_version_tokens_and_cost(fake_openai, settings):
    settings.NEWSDIGEST_LLM_PRICES = {"fake-model": (1.0, 2.0)}
    fake_openai.push(answer(canned_summary(), usage=(1000, 500)))
    article = make_article()
    summary = summarize_article(article.pk, engine="openai")
    assert (summary.model, summary.prompt_version, summary.engine) == ("fake-model", llm_client.PROMPT_VERSION,
                                                                        "openai")
    assert (summary.prompt_tokens, summary.completion_tokens) == (1000, 500)
    assert summary.cost_usd == Decimal("0.002000")
    assert summary.key_actors[0]["name"] == "Ahmad Massoud"
    article.refresh_from_db()
    assert article.status == Article.Status.SUMMARIZED


def test_second_run_is_a_cache_hit_that_costs_no_tokens(fake_openai):
    fake_openai.push(answer(canned_summary()))
    article = make_article()
    first = summarize_article(article.pk, engine="openai")
    second = summarize_article(article.pk, engine="openai")
    assert second.pk == first.pk
    assert len(fake_openai.requests) == 1


def test_digest_token_totals_add_up_each_summary_once(fake_openai, settings):
    settings.NEWSDIGEST_LLM_PRICES = {"fake-model": (1.0, 2.0)}
    fake_openai.push(answer(canned_summary(), usage=(1000, 500)), answer(canned_summary(), usage=(3000, 100)))
    articles = [make_article("a"), make_article("b")]
    summaries = [summarize_article(a.pk, engine="openai") for a in articles]
    digest = Digest.objects.create(newsletter=Newsletter.objects.create(name="N", slug="n"), subject="S")
    for position, (article, summary) in enumerate(zip(articles, summaries, strict=True)):
        DigestItem.objects.create(digest=digest, article=article, summary=summary, position=position)
    assert digest_token_totals(digest) == {"summaries": 2, "prompt_tokens": 4000, "completion_tokens": 600,
                                           "cost_usd": Decimal("0.005200")}


def test_exhausted_retries_mark_the_article_failed_and_an_editor_retry_recovers_it(fake_openai):
    article = make_article()
    fake_openai.push(error(500, "boom"), error(502, "bad gateway"), error(500, "boom again"))
    with pytest.raises(EngineTransientError):
        summarize_article(article.pk, engine="openai")
    article.refresh_from_db()
    assert article.status == Article.Status.FAILED
    assert article.last_error == "gave up after 3 requests: HTTP 500: boom again"
    assert not Article.objects.filter(status=Article.Status.SUMMARIZED).exists()

    fake_openai.push(answer(canned_summary()))
    out = StringIO()
    call_command("summarize", "--article", str(article.pk), "--engine", "openai", "--force", stdout=out)
    article.refresh_from_db()
    assert (article.status, article.last_error) == (Article.Status.SUMMARIZED, "")
    assert "1 summarized, 0 failed" in out.getvalue()


def test_celery_task_records_the_failure_instead_of_retrying_again(fake_openai):
    article = make_article()
    fake_openai.push(error(400, "model does not exist"))
    assert tasks.summarize_article.delay(article.pk, engine="openai").get() is None
    article.refresh_from_db()
    assert article.status == Article.Status.FAILED and "HTTP 400" in article.last_error
    assert len(fake_openai.requests) == 1


def test_cli_json_prints_the_fixed_shape(fake_openai):
    fake_openai.push(answer(canned_summary()))
    article = make_article()
    out = StringIO()
    call_command("summarize", "--pending", "--engine", "openai", "--json", stdout=out)
    [item] = json.loads(out.getvalue())
    assert set(item) == {"article_id", "title", "headline", "summary", "why_it_matters", "key_actors", "topics",
                         "flags", "engine", "model", "prompt_version", "tokens"}
    assert (item["article_id"], item["engine"], item["prompt_version"]) == (article.pk, "openai",
                                                                             llm_client.PROMPT_VERSION)
    assert item["tokens"] == {"prompt": 100, "completion": 50}


def test_cli_fails_when_every_article_failed(fake_openai):
    article = make_article()
    fake_openai.push(error(401, "bad key"))
    with pytest.raises(CommandError, match="every article failed"):
        call_command("summarize", "--article", str(article.pk), "--engine", "openai", stdout=StringIO(),
                     stderr=StringIO())


WORKER = """
import sys
from concurrent.futures import ThreadPoolExecutor
import django
django.setup()
from tests.helpers.fake_openai import ARTICLE, ARTICLE_TITLE
from worker.summarize.engines import OpenAICompatibleEngine
with ThreadPoolExecutor(4) as pool:
    results = list(pool.map(lambda _: OpenAICompatibleEngine().summarize(ARTICLE_TITLE, ARTICLE),
                            range(int(sys.argv[1]))))
print(sum(r.requests for r in results))
"""


def bucket_takes(writes: list[tuple[float, float]], rate: float, capacity: float, cost: float = 1.0) -> list[float]:
    """The limiter's own record of when a token was taken: each try replays the take script's
    arithmetic on the (tokens, ts) it wrote, and a take is a write that is one cost below what had
    refilled. Times are the Redis server's clock, so no process's scheduling can blur them."""
    takes, tokens, ts = [], capacity, None
    for written, now in writes:
        available = capacity if ts is None else min(capacity, tokens + (now - ts) * rate)
        if written < available - cost / 2:
            takes.append(now)
        tokens, ts = written, now
    return takes


def monitor_bucket(redis_url: str, key: str, writes: list[tuple[float, float]], ready: threading.Event) -> None:
    """Record every (tokens, ts) the take script writes to `key` until someone ECHOes the key."""
    # No read timeout: the workers may take a while to start, and the stream is quiet until they do.
    with redis.Redis.from_url(redis_url, socket_timeout=None).monitor() as monitor:
        ready.set()
        for entry in monitor.listen():
            args = entry["command"].split()
            if args == ["ECHO", key]:
                return
            if args[:2] == ["HSET", key]:
                fields = dict(zip(args[2::2], args[3::2], strict=True))
                writes.append((float(fields["tokens"]), float(fields["ts"])))


@pytest.mark.slow
def test_requests_per_minute_hold_across_two_worker_processes(fake_openai, redis_url, tmp_path):
    fake_openai.handler = lambda body: answer(canned_summary())
    rpm, per_worker = 120, 6  # 2 requests/s shared by both processes
    key, writes, ready = "newsdigest:rl:llm:rpm", [], threading.Event()
    watcher = threading.Thread(target=monitor_bucket, args=(redis_url, key, writes, ready), daemon=True)
    watcher.start()
    assert ready.wait(30)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "OPENAI_", "NEWSDIGEST_"))}
    env.update(DJANGO_SETTINGS_MODULE="worker.settings", NEWSDIGEST_VAR_DIR=str(tmp_path), REDIS_URL=redis_url,
               OPENAI_BASE_URL=fake_openai.url, OPENAI_API_KEY="k", NEWSDIGEST_LLM_MODEL="rate-test",
               NEWSDIGEST_LLM_RPM=str(rpm))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(per_worker)], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    redis.Redis.from_url(redis_url).echo(key)
    watcher.join(30)
    rate = rpm / 60
    takes = bucket_takes(writes, rate, capacity=1)
    # One shared bucket admitted every request the server saw, and no more.
    assert len(takes) == len(fake_openai.requests) == 2 * per_worker
    # A burst of 1 means takes are at least 1/rate apart on the Redis clock (so any window of w seconds
    # holds at most rate*w + 1). The slack is the rounding of Lua's tostring (14 digits: 0.1 ms here).
    gaps = [later - earlier for earlier, later in itertools.pairwise(takes)]
    assert min(gaps) >= 1 / rate - 1e-3, takes
