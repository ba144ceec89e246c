"""`newsdigest`: Django's management commands under one name (demo, ingest, summarize, digest,
send, eval, and every built-in such as migrate, shell, runserver, createsuperuser), plus
`worker` and `beat`, which hand their options to Celery unchanged.

A newcomer's usual set-up mistakes (a bad DATABASE_URL, a database never migrated, Redis not
running) end in one line naming the fix, not a traceback; `--traceback` still shows it."""

import os
import sys


def explain(exc: BaseException) -> str | None:
    """One line naming the fix for a set-up mistake, or None for anything else (a real bug)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError
    from kombu.exceptions import OperationalError as BrokerError

    from worker.broker import BrokerUnavailable, broker_setting, redact

    if isinstance(exc, ImproperlyConfigured | BrokerUnavailable):
        return str(exc)
    if isinstance(exc, BrokerError):
        url, setting = redact(settings.CELERY_BROKER_URL), broker_setting()
        return f"cannot reach the broker at {setting}={url}; start Redis or fix {setting}"
    if isinstance(exc, DatabaseError):
        if _unmigrated():
            return "the database is not set up (or is behind this version): run `newsdigest migrate`"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return (f"cannot use the database at DATABASE_URL={redact(settings.DATABASE_URL)} ({reason}); "
                f"check DATABASE_URL and that the database server is running")
    return None


def _unmigrated() -> bool:
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError:
        return False  # cannot even read the migration table: a connection problem


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")
    command = argv[0] if argv else "help"
    try:
        if command in ("worker", "beat"):
            import django

            django.setup()
            from worker.broker import run_celery

            sys.exit(run_celery(command, argv[1:]))
        from django.core.management import execute_from_command_line

        execute_from_command_line(["newsdigest", *argv])
    except Exception as exc:
        message = explain(exc)
        if message is None or "--traceback" in argv:
            raise
        print(f"newsdigest {command}: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
