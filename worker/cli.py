"""`newsdigest`: Django's management commands under one name (demo, ingest, summarize, digest,
send, eval, and every built-in such as migrate, shell, runserver, createsuperuser), plus
`worker` and `beat`, which hand their options to Celery unchanged."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")
    if argv and argv[0] in ("worker", "beat"):
        import django

        django.setup()
        from worker.broker import run_celery

        sys.exit(run_celery(argv[0], argv[1:]))
    from django.core.management import execute_from_command_line

    execute_from_command_line(["newsdigest", *argv])


if __name__ == "__main__":
    main()
