"""The one published enqueue interface: how a stage asks for background work without importing
worker.tasks.

Every job a stage or beat may start is a member of `Job`, named by its Celery task name (the name
beat's schedule rows store, so it must never change). The tasks in worker/tasks.py register
themselves here when imported (`@jobs.register`): the dependency goes tasks -> jobs -> nothing, so a
stage that enqueues never imports the tasks or what they import. WorkerConfig.ready() imports
worker.tasks, so the registry is filled in every process (web, workers, CLI) before any stage runs.

The same call works in both set-ups: with CELERY_TASK_ALWAYS_EAGER (the embedded default) `.delay`
runs the task in-process, with a broker it publishes a message for the workers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol, TypeVar

from django.db import transaction


class Job(StrEnum):
    """Every task that can be started, by its Celery name."""

    SUMMARIZE_ARTICLE = "worker.tasks.summarize_article"
    REGENERATE_SUMMARY = "worker.tasks.regenerate_summary"
    START_SEND = "worker.tasks.start_send"
    SEND_BATCH = "worker.tasks.send_batch"
    SWEEP_DELIVERIES = "worker.tasks.sweep_deliveries"
    NEWSLETTER_TICK = "worker.tasks.newsletter_tick"
    ENFORCE_APPROVAL_DEADLINES = "worker.tasks.enforce_approval_deadlines"
    POLL_FEEDS = "worker.tasks.poll_feeds"
    POLL_FEED = "worker.tasks.poll_feed"
    SEND_CONFIRMATION = "worker.tasks.send_confirmation"
    FLUSH_CLICKS = "worker.tasks.flush_clicks"


class Task(Protocol):
    """What a registered task offers: a Celery task (or a test double) with a name and `delay`."""

    name: str

    def delay(self, *args: Any, **kwargs: Any) -> Any: ...


_registry: dict[Job, Task] = {}
T = TypeVar("T", bound=Task)


def register(task: T) -> T:
    """Decorator for the tasks in worker/tasks.py; refuses a task `Job` does not name, so the list
    above stays complete."""
    _registry[Job(task.name)] = task
    return task


def task_for(job: Job) -> Task:
    try:
        return _registry[job]
    except KeyError:
        raise LookupError(f"no task registered for {job.value}: worker.tasks is imported by "
                          f"WorkerConfig.ready(); is the worker app installed?") from None


def enqueue(job: Job, *args: Any, **kwargs: Any) -> Any:
    """Start the job now (eager: run it here; else: publish it). The broker's errors reach the caller."""
    return task_for(job).delay(*args, **kwargs)


def enqueue_after_commit(job: Job, *args: Any, **kwargs: Any) -> None:
    """Start the job once the current transaction commits, so the worker finds the rows it is given
    (at once when no transaction is open)."""
    task = task_for(job)  # an unknown job fails here, in the caller, not later in on_commit
    transaction.on_commit(lambda: task.delay(*args, **kwargs))
