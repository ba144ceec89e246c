from django.core.management.base import BaseCommand, CommandError

from worker.ingest import feeds
from worker.models import Newsletter, Source


class Command(BaseCommand):
    help = "Manage RSS/Atom/JSON feeds: add one, poll the due ones (or all), list them."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a feed and make sure celery beat polls feeds")
        add.add_argument("url")
        add.add_argument("--newsletter", default="", help="slug of the newsletter its articles go to")
        add.add_argument("--name", default="", help="display name (default: the feed's host)")
        poll = sub.add_parser("poll", help="poll the feeds that are due")
        poll.add_argument("--all", action="store_true", help="poll every active feed, due or not")
        sub.add_parser("list", help="list feeds with their state")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_add(self, url, newsletter, name, **options):
        letter = None
        if newsletter:
            letter = Newsletter.objects.filter(slug=newsletter).first()
            if letter is None:
                raise CommandError(f"no newsletter with slug {newsletter!r}")
        try:
            source, created = feeds.add_feed(url, name=name, newsletter=letter)
        except feeds.FeedError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{'added' if created else 'already present'}: feed {source.pk} {source.name} {source.url}")

    def do_poll(self, all, **options):
        if all:
            ids = Source.objects.filter(kind=Source.Kind.FEED, active=True).order_by("pk").values_list("pk", flat=True)
        else:
            ids = feeds.due_source_ids()
        reports = [feeds.poll_source_id(pk, force=all) for pk in ids]
        for report in filter(None, reports):
            (self.stderr if report.error else self.stdout).write(str(report))
        self.stdout.write(f"polled {len(reports)} feed(s)")

    def do_list(self, **options):
        for s in Source.objects.filter(kind=Source.Kind.FEED).select_related("newsletter").order_by("pk"):
            state = f"errors={s.error_count} last_error={s.last_error[:80]!r}" if s.error_count else "ok"
            self.stdout.write(f"{s.pk}\t{s.name}\t{s.url}\t{s.newsletter.slug if s.newsletter else '-'}\t"
                              f"{'active' if s.active else 'paused'}\tlast={s.last_polled_at or '-'}\t"
                              f"next={s.next_poll_at or '-'}\t{state}")
