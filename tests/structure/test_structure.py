"""The architecture the README draws, checked where import-linter's contracts (pyproject.toml, run by
`lint-imports` in scripts/test) stop: module-level import cycles, the enqueue registry, the broker URL."""

from collections.abc import Iterator

import grimp
import pytest
from celery import current_app
from django.conf import settings

from worker import broker, jobs, tasks


def _cycles(graph: grimp.ImportGraph, package: str) -> Iterator[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if not nxt.startswith(package):
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        yield sorted(component)


def test_no_import_cycles_between_modules_of_worker():
    """import-linter's acyclic_siblings contract compares siblings; this also catches a cycle through a
    package's __init__. grimp reads imports inside functions too, so a deferred import is no way out."""
    graph = grimp.build_graph("worker", cache_dir=None)
    assert list(_cycles(graph, "worker")) == []


def test_a_function_level_import_counts_as_an_import():
    graph = grimp.build_graph("worker", cache_dir=None)
    lines = [d["line_contents"] for d in graph.get_import_details(importer="worker.apps", imported="worker.tasks")]
    assert lines, "the import inside WorkerConfig.ready() is in the graph"


def test_every_task_is_a_registered_job_and_every_job_a_task():
    names = {name for name in current_app.tasks if name.startswith("worker.tasks.")}
    assert names == {job.value for job in jobs.Job}
    for job in jobs.Job:
        assert jobs.task_for(job).name == job.value
    assert jobs.task_for(jobs.Job.SEND_BATCH) is tasks.send_batch


def test_beat_schedules_name_only_jobs():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= {job.value for job in jobs.Job}


def test_registering_a_task_the_job_list_does_not_name_is_refused():
    class Stray:
        name = "worker.tasks.not_a_job"

        def delay(self, *args, **kwargs):
            return None

    with pytest.raises(ValueError):
        jobs.register(Stray())


@pytest.mark.django_db(transaction=True)
def test_enqueue_after_commit_waits_for_the_commit(monkeypatch):
    from django.db import transaction

    calls = []
    monkeypatch.setattr(tasks.poll_feed, "delay", lambda *args: calls.append(args))
    with transaction.atomic():
        jobs.enqueue_after_commit(jobs.Job.POLL_FEED, 7)
        assert calls == []
    assert calls == [(7,)]


@pytest.mark.parametrize(("url", "redis"), [
    ("redis://localhost:6379/0", True), ("rediss://h:6380/1", True), ("unix:///run/redis.sock", True),
    ("amqp://guest@localhost//", False), ("", False)])
def test_which_urls_are_redis(url, redis):
    assert broker.is_redis(url) is redis


@pytest.mark.parametrize(("redis_url", "broker_url", "shared", "setting"), [
    ("", "", None, "REDIS_URL"),
    ("redis://r/0", "redis://r/0", "redis://r/0", "REDIS_URL"),
    ("", "redis://b/0", "redis://b/0", "CELERY_BROKER_URL"),
    ("redis://r/0", "amqp://b//", "redis://r/0", "CELERY_BROKER_URL"),
    ("", "amqp://b//", None, "CELERY_BROKER_URL")])
def test_shared_state_and_broker_setting(settings, redis_url, broker_url, shared, setting):
    settings.REDIS_URL, settings.CELERY_BROKER_URL = redis_url, broker_url
    assert broker.shared_state_url() == shared
    assert broker.broker_setting() == setting
