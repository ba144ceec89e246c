import json
import sqlite3

import pytest
import yaml
from django.core.management import call_command, get_commands

from tests.helpers.paths import REPO
from tests.helpers.processes import free_port, newsdigest, subprocess_env
from worker.broker import CELERY_DEFAULTS
from worker.ingest import articles

SUMMARY_KEYS = {"article_id", "title", "headline", "summary", "why_it_matters", "key_actors", "topics", "flags",
                "engine", "model", "prompt_version", "tokens"}
ACTOR_KEYS = {"name", "kind", "role", "evidence"}


def _demo_env(tmp_path) -> dict[str, str]:
    env = subprocess_env(NEWSDIGEST_VAR_DIR=str(tmp_path / "var"))
    env.pop("DATABASE_URL")
    for name in ("REDIS_URL", "EMAIL_URL", "NEWSDIGEST_OUTBOX_DIR"):
        env.pop(name, None)
    return env


def _counts(db_path) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        return {table: db.execute(f"select count(*) from worker_{table}").fetchone()[0]
                for table in ("article", "summary", "digest", "delivery", "subscriber")}


@pytest.mark.slow
def test_demo_twice_adds_nothing_the_second_time(tmp_path):
    env = _demo_env(tmp_path)
    first = newsdigest("demo", env=env)
    assert "preview:" in first.stdout
    db = tmp_path / "var" / "newsdigest.sqlite3"
    after_first = _counts(db)
    outbox = sorted((tmp_path / "var" / "outbox").glob("*.eml"))
    newsdigest("demo", env=env)
    assert _counts(db) == after_first
    assert sorted((tmp_path / "var" / "outbox").glob("*.eml")) == outbox
    assert after_first["article"] >= 5 and after_first["delivery"] == len(outbox) == 3


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:{port}/0"])
def test_worker_without_redis_exits_with_one_clear_line(tmp_path, redis_url):
    env = _demo_env(tmp_path)
    if redis_url:
        env["REDIS_URL"] = redis_url.format(port=free_port())
    result = newsdigest("worker", env=env, check=False, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "REDIS_URL" in lines[0]


@pytest.mark.django_db
def test_summarize_json_has_the_fixed_shape(capsys):
    article = articles.ingest_article(
        title="Council backs bridge repair",
        text="The Riverton City Council voted on Tuesday to repair the Harbour Bridge. Mayor Elena Vasquez "
             "welcomed the vote. Public Works director Samuel Okafor said work starts in March.",
    ).article
    call_command("summarize", "--article", str(article.pk), "--engine", "offline", "--json")
    payload = json.loads(capsys.readouterr().out)
    assert isinstance(payload, list) and len(payload) == 1
    assert SUMMARY_KEYS <= payload[0].keys()
    assert payload[0]["article_id"] == article.pk and payload[0]["engine"] == "offline"
    assert all(ACTOR_KEYS <= actor.keys() for actor in payload[0]["key_actors"])


def test_compose_runs_only_commands_the_cli_has():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "web", "worker", "beat", "mail"} <= services.keys()
    known = set(get_commands()) | set(CELERY_DEFAULTS)
    commands = [svc["command"] for svc in services.values() if "command" in svc]
    ours = [c if isinstance(c, list) else c.split() for c in commands]
    ours = [c for c in ours if c[0] == "newsdigest"]
    assert {c[1] for c in ours} >= {"worker", "beat"}
    for command in ours:
        assert command[1] in known, f"docker-compose runs unknown command: {' '.join(command)}"
