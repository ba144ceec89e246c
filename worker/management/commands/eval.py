"""`newsdigest eval FILE.jsonl`: measure a summarize engine against a labelled set."""

import json

from django.core.management.base import BaseCommand, CommandError

from worker.evaluation import EvalDataError, evaluate, load_dataset, render_table


class Command(BaseCommand):
    help = "Score a summarize engine (ROUGE, key actors, evidence) against a jsonl file, with a Lead-3 baseline."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--engine", choices=("offline", "openai"), default="offline")
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")
        parser.add_argument("--limit", type=int, default=None, help="only the first N articles")

    def handle(self, *args, **options) -> None:
        try:
            records = load_dataset(options["file"])
        except (EvalDataError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        limit = options["limit"]
        report = evaluate(records[:limit] if limit else records, options["engine"])
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) if options["json"] else render_table(report))
