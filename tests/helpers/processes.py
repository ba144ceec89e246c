"""Real processes for tests: free ports, waiting, a private redis-server, `newsdigest` commands and
Celery workers sharing the test database."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import kombu
import pytest
from django.db import connection

from tests.helpers.paths import REPO

# RabbitMQ for the tests that run on it too (this machine kind runs one; a fresh machine may not).
AMQP_URL = os.environ.get("NEWSDIGEST_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def rabbitmq_or_skip() -> str:
    """AMQP_URL when RabbitMQ answers there; otherwise the calling test is skipped, saying why."""
    try:
        with kombu.Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no RabbitMQ here"
        pytest.skip(f"RabbitMQ not reachable at {AMQP_URL}: {exc}")
    return AMQP_URL


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
    # The log may hold an earlier worker's "ready." (a restart, a bench's next round): only this one's counts.
    offset = log.tell()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--concurrency", str(concurrency), "--pool", "prefork",
         "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for(lambda: b"ready." in log_path.read_bytes()[offset:] or proc.poll() is not None, 60, what="celery worker")
    if proc.poll() is not None:
        raise AssertionError(f"worker exited:\n{log_path.read_text(errors='replace')[-3000:]}")
    return proc


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    proc.wait(30)
