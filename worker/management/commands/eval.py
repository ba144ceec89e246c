"""`newsdigest eval [FILE.jsonl ...]`: measure summarize engines against labelled sets.

Without files it scores both sets shipped in tests/data/eval (the team-written dev set and the
real-news set); a set with a tune/test split is reported per split, and every table has the
Lead-3 baseline beside the engines, all computed in the same run.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from worker.summarize.evaluation import ENGINES, EvalDataError, evaluate, load_dataset, render_table, splits

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "eval"
DEFAULT_FILES = (DATA / "dev.jsonl", DATA / "real_news.jsonl")
DEFAULT_ENGINES = ("offline", "offline-rules", "bigrams")


class Command(BaseCommand):
    help = "Score summarize engines (ROUGE, key actors, headline and quote checks) against jsonl sets, with Lead-3."

    def add_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="*", help="jsonl sets (default: the dev set and the real-news set)")
        parser.add_argument("--engine", choices=ENGINES, action="append",
                            help="engine to score; repeat to compare (default: offline, offline-rules, bigrams)")
        parser.add_argument("--split", help="only this split (e.g. test) of sets that have one")
        parser.add_argument("--json", action="store_true", help="print the full reports as JSON")
        parser.add_argument("--limit", type=int, default=None, help="only the first N articles of each set")

    def handle(self, *args, **options) -> None:
        files = options["files"] or [str(f) for f in DEFAULT_FILES]
        engines = options["engine"] or list(DEFAULT_ENGINES)
        reports = []
        for name in files:
            try:
                records = load_dataset(name)
            except (EvalDataError, OSError) as exc:
                raise CommandError(str(exc)) from exc
            for split, part in splits(records).items():
                if options["split"] and split not in (options["split"], "all"):
                    continue
                part = part[:options["limit"]] if options["limit"] else part
                group = [evaluate(part, engine) | {"set": Path(name).name, "split": split} for engine in engines]
                reports.extend(group)
                if not options["json"]:
                    self.stdout.write(render_table(group, f"{Path(name).name}, {split} split: {len(part)} articles"))
        if options["json"]:
            self.stdout.write(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2, ensure_ascii=False))
