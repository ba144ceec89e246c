"""`newsdigest subscribers import FILE --newsletter SLUG [--confirmed]` and
`newsdigest subscribers export [--newsletter SLUG]` (CSV on stdout)."""

import os
import stat
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from worker import subscribers
from worker.management.commands._progress import progress
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
            stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        try:
            _refuse_oversized(stream)
            report = subscribers.import_csv(
                stream, newsletter, confirmed=confirmed,
                progress=lambda rows: progress(rows, "importing", stream=self.stderr))
        except subscribers.InvalidSubscriber as exc:
            raise CommandError(f"{path}: {exc}") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        for line, reason in report.rejected:
            self.stderr.write(f"line {line}: rejected: {reason}")
        waiting = (f" ({report.awaiting_confirmation} already awaiting confirmation, not mailed again)"
                   if report.awaiting_confirmation else "")
        self.stdout.write(f"{report.added} new subscribers, {report.subscribed} subscribed to {newsletter.slug}, "
                          f"{report.unchanged} unchanged{waiting}, {len(report.rejected)} rejected")


def _refuse_oversized(stream) -> None:
    """A regular file over the cap is refused before a byte of it is read (stdin is capped while streaming)."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both: a stream without a file behind it
        return
    cap = settings.NEWSDIGEST_IMPORT_MAX_BYTES
    if stat.S_ISREG(info.st_mode) and info.st_size > cap:
        raise subscribers.ImportRefused(f"{info.st_size} bytes is more than NEWSDIGEST_IMPORT_MAX_BYTES ({cap}); "
                                        "nothing was imported; split the file or raise the limit")


def _newsletter(slug: str) -> Newsletter:
    try:
        return Newsletter.objects.get(slug=slug)
    except Newsletter.DoesNotExist:
        raise CommandError(f"no newsletter with slug {slug!r}") from None
