"""Issue 13.3, 12, 13: no known secret, private files, production settings from the environment."""

import os
import stat
import subprocess
import sys

import pytest
import yaml

from tests.helpers.paths import REPO
from tests.helpers.processes import subprocess_env

RANDOM_KEY = "q8Jx2vN0sLw4Rt7yUe1iOp3aSd5fGh9jKl6zXc8vBn2mQw4eRt"


def start(tmp_path, *command: str, **env: str | None) -> subprocess.CompletedProcess:
    """The settings loaded in a fresh process, exactly as at start-up (or a `newsdigest` command);
    a variable given as None is unset."""
    base = {k: v for k, v in subprocess_env().items() if k not in {"SECRET_KEY", "DEBUG"}}
    base["NEWSDIGEST_VAR_DIR"] = str(tmp_path / "var")
    base = {k: v for k, v in {**base, **env}.items() if v is not None}
    args = ["-m", "worker", *command] if command else ["-c", "import worker.settings"]
    return subprocess.run([sys.executable, *args], env=base, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_compose_has_no_default_secret_key():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    value = compose["x-app"]["environment"]["SECRET_KEY"]
    assert value.startswith("${SECRET_KEY:?"), value


@pytest.mark.parametrize("key", ["change-me-in-production", "django-insecure-" + "x" * 50, "short-but-random-7Gq"])
def test_the_app_refuses_to_start_with_a_forgeable_secret_key(tmp_path, key):
    result = start(tmp_path, SECRET_KEY=key)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_a_weak_key_is_tolerated_in_debug_only(tmp_path):
    assert start(tmp_path, SECRET_KEY="change-me-in-production", DEBUG="1").returncode == 0


def test_the_embedded_default_generates_a_private_secret_key_file(tmp_path):
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "var" / "secret_key"
    assert len(key_file.read_text()) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0
    assert start(tmp_path).returncode == 0  # and reuses it


def test_a_process_that_loses_the_race_for_the_key_file_reads_the_winners_key(tmp_path, monkeypatch):
    """Workers starting together: one writes the key file while another is between its check and its
    write. The loser must neither crash on the existing file nor use a key of its own."""
    from django.core.management import utils

    from worker import settings as worker_settings

    winner = "w" * 50
    generate = utils.get_random_secret_key

    def generate_while_another_process_wins() -> str:
        (tmp_path / "secret_key").write_text(winner)
        return generate()

    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(worker_settings, "VAR_DIR", tmp_path)
    monkeypatch.setattr(utils, "get_random_secret_key", generate_while_another_process_wins)
    assert worker_settings._secret_key() == winner
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left behind


def test_a_random_key_of_fifty_characters_starts(tmp_path):
    assert start(tmp_path, SECRET_KEY=RANDOM_KEY).returncode == 0


def test_the_secret_key_file_is_private_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        assert start(tmp_path).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "var" / "secret_key").stat().st_mode) == 0o600


def test_the_sqlite_database_is_created_private(tmp_path):
    old = os.umask(0)
    try:
        assert start(tmp_path, "shell", "-c", "from django.db import connection; "
                     "connection.cursor().execute('CREATE TABLE t (x int)')",
                     SECRET_KEY=RANDOM_KEY, DATABASE_URL=None).returncode == 0
    finally:
        os.umask(old)
    database = tmp_path / "var" / "newsdigest.sqlite3"
    assert database.stat().st_size > 0
    for path in [database, *tmp_path.glob("var/*.sqlite3-*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


PRODUCTION = {"SECRET_KEY": RANDOM_KEY, "ALLOWED_HOSTS": "news.example.com", "NEWSDIGEST_HTTPS": "1",
              "NEWSDIGEST_SITE_URL": "https://news.example.com", "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO"}


def test_check_deploy_passes_with_the_documented_production_variables(tmp_path):
    result = start(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_without_https_settings(tmp_path):
    result = start(tmp_path, "check", "--deploy", "--fail-level", "WARNING",
                   **{**PRODUCTION, "NEWSDIGEST_HTTPS": None})
    assert result.returncode != 0 and "security.W004" in result.stdout + result.stderr


def test_production_settings_make_cookies_secure_and_redirect_to_https(monkeypatch):
    import importlib

    from worker import settings as worker_settings

    for key, value in PRODUCTION.items():
        monkeypatch.setenv(key, value)
    try:
        loaded = importlib.reload(worker_settings)
        assert (loaded.SESSION_COOKIE_SECURE, loaded.CSRF_COOKIE_SECURE, loaded.SECURE_SSL_REDIRECT) == (True,) * 3
        assert loaded.SECURE_HSTS_SECONDS >= 31536000 and loaded.SECURE_HSTS_INCLUDE_SUBDOMAINS
        assert loaded.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    finally:
        monkeypatch.undo()
        importlib.reload(worker_settings)


@pytest.mark.django_db
def test_plain_http_is_redirected_but_health_probes_are_not(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/archive/").status_code == 301
    assert client.get("/health").status_code == 200


@pytest.mark.django_db
def test_a_client_cannot_claim_https_without_a_trusted_proxy_header(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/archive/", HTTP_X_FORWARDED_PROTO="https").status_code == 301
