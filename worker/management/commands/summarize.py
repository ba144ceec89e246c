import json

from django.core.management.base import BaseCommand, CommandError

from worker import summarize
from worker.summarize.engines import ENGINES
from worker.summarize.errors import EngineError

from ._progress import progress


class Command(BaseCommand):
    help = "Summarize articles (in this process) with the openai or offline engine."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--pending", action="store_true", help="every article not yet summarized")
        which.add_argument("--article", type=int, action="append", metavar="ID")
        parser.add_argument("--engine", choices=list(ENGINES))
        parser.add_argument("--force", action="store_true", help="ignore the cache and summarize again")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the summaries as JSON")

    def handle(self, *args, pending, article, engine, force, as_json, **options):
        ids = summarize.pending_article_ids() if pending else article
        results, failures = [], []
        for article_id in progress(ids, "Summarizing", stream=self.stdout):
            try:
                results.append(summarize.summarize_article(article_id, engine=engine, force=force))
            except summarize.Article.DoesNotExist:
                raise CommandError(f"no article {article_id}") from None
            except EngineError as exc:
                failures.append((article_id, str(exc)))
        if as_json:
            self.stdout.write(json.dumps([summarize.summary_as_json(s) for s in results], indent=2,
                                         ensure_ascii=False))
        else:
            self.stdout.write(f"{len(results)} summarized, {len(failures)} failed")
        for article_id, reason in failures:
            self.stderr.write(f"article {article_id} failed: {reason}")
        if failures and not results:
            raise CommandError("every article failed")

