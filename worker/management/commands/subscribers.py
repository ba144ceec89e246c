"""`newsdigest subscribers import FILE --newsletter SLUG [--confirmed]` and
`newsdigest subscribers export [--newsletter SLUG]` (CSV on stdout)."""

import sys

from django.core.management.base import BaseCommand, CommandError

from worker import subscribers
from worker.models import Newsletter


class Command(BaseCommand):
    help = "Import subscribers from CSV (with a per-row report of rejected rows) or export them as CSV."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="add subscribers from a CSV file with an 'email' column")
        imp.add_argument("file", metavar="FILE", help="CSV file ('-' for stdin)")
        imp.add_argument("--newsletter", required=True, metavar="SLUG")
        imp.add_argument("--confirmed", action="store_true",
                         help="the addresses already opted in: activate without a confirmation mail")
        exp = sub.add_parser("export", help="write subscribers as CSV to stdout")
        exp.add_argument("--newsletter", metavar="SLUG", help="only this newsletter's subscribers")

    def handle(self, *args, action, newsletter, **options):
        letter = _newsletter(newsletter) if newsletter else None
        if action == "export":
            count = subscribers.export_csv(self.stdout, letter)
            self.stderr.write(f"{count} subscribers exported")
            return
        self.do_import(options["file"], letter, options["confirmed"])

    def do_import(self, path: str, newsletter: Newsletter, confirmed: bool) -> None:
        try:
            stream = sys.stdin if path == "-" else open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        try:
            report = subscribers.import_csv(stream, newsletter, confirmed=confirmed)
        except subscribers.InvalidSubscriber as exc:
            raise CommandError(str(exc)) from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text: {exc}") from None
        finally:
            if stream is not sys.stdin:
                stream.close()
        for line, reason in report.rejected:
            self.stderr.write(f"line {line}: rejected: {reason}")
        self.stdout.write(f"{report.added} new subscribers, {report.subscribed} subscribed to {newsletter.slug}, "
                          f"{report.unchanged} unchanged, {len(report.rejected)} rejected")


def _newsletter(slug: str) -> Newsletter:
    try:
        return Newsletter.objects.get(slug=slug)
    except Newsletter.DoesNotExist:
        raise CommandError(f"no newsletter with slug {slug!r}") from None
