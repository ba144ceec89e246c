import logging
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from worker.broker import BrokerUnavailable, require_broker
from worker.ingest import articles
from worker.models import Source

from ._progress import progress


@contextmanager
def _refusals_printed_here():
    """ingest.record_rejection also logs each refusal; this command prints them itself, so the log
    lines stay out of the console (the record still reaches every other handler)."""
    def not_a_refusal(record: logging.LogRecord) -> bool:
        return not (record.name == "newsdigest.ingest" and record.getMessage().startswith("refused "))

    handlers = logging.getLogger("newsdigest").handlers + logging.getLogger("newsdigest.ingest").handlers
    for handler in handlers:
        handler.addFilter(not_a_refusal)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(not_a_refusal)


class Command(BaseCommand):
    help = "Ingest articles from files (txt, md, html, json, eml), directories, globs or URLs; queue their summaries."

    def add_arguments(self, parser):
        parser.add_argument("targets", nargs="+", metavar="PATH|URL")
        parser.add_argument("--source", default="", help="name of the Source to file them under")
        parser.add_argument("--no-summarize", action="store_true", help="store only; summarize later")

    def handle(self, *args, targets, source, no_summarize, **options):
        urls = [t for t in targets if t.lower().startswith(("http://", "https://"))]
        paths = articles.expand_paths([t for t in targets if t not in urls])
        if not urls and not paths:
            raise CommandError(f"nothing to ingest: no file matches {' '.join(targets)}")
        if not no_summarize:
            try:
                require_broker()
            except BrokerUnavailable as exc:
                raise CommandError(f"{exc} (or pass --no-summarize to store the articles only)") from None
        src = Source.objects.get_or_create(name=source, defaults={"kind": Source.Kind.FILE})[0] if source else None
        created, updated, duplicates, errors = 0, 0, 0, []
        jobs = [("url", u) for u in urls] + [("path", p) for p in paths]
        with _refusals_printed_here():
            for kind, target in progress(jobs, "Ingesting", stream=self.stdout):
                try:
                    with transaction.atomic():
                        results = ([articles.ingest_url(target, src)] if kind == "url"
                                   else articles.ingest_file(target, src))
                        for result in results if not no_summarize else []:
                            articles.queue_summary(result)
                except (articles.IngestError, OSError) as exc:
                    articles.record_rejection(src, str(target), str(exc))
                    # Some reasons already start with the file's name; say it once.
                    reason = str(exc).removeprefix(f"{target}: ").removeprefix(f"{Path(str(target)).name}: ")
                    errors.append(f"{target}: {reason}")
                    continue
                created += sum(r.created for r in results)
                updated += sum(r.updated for r in results)
                duplicates += sum(not r.needs_summary for r in results)
        self.stdout.write(f"{created} new, {updated} updated, {duplicates} already known, {len(errors)} refused")
        for error in errors:
            self.stderr.write(f"refused {error}")
        if errors and not (created or updated or duplicates):
            raise CommandError(f"nothing ingested: all {len(errors)} refused")
