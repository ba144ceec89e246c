from datetime import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from worker import schedule, tasks
from worker.models import Newsletter

SCHEDULE_FIELDS = ("cadence", "send_time", "weekday", "cron", "timezone", "approval", "approval_deadline_minutes",
                   "send_if_unapproved", "max_stories", "public_archive")


def _time(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--time wants HH:MM, got {value!r}") from None


class Command(BaseCommand):
    help = "Create, list and schedule newsletters; every change is written to celery beat at once."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="a new newsletter and its schedule")
        create.add_argument("slug")
        create.add_argument("--name", required=True)
        self._schedule_options(create)
        sched = sub.add_parser("schedule", help="change a newsletter's cadence, time, zone or approval mode")
        sched.add_argument("slug")
        self._schedule_options(sched)
        sub.add_parser("list", help="newsletters with their next run times")
        sub.add_parser("sync", help="rewrite every newsletter's beat schedule (after edits made elsewhere)")
        tick = sub.add_parser("tick", help="run the scheduled build now, as beat would (idempotent per slot)")
        tick.add_argument("slug")

    @staticmethod
    def _schedule_options(parser):
        parser.add_argument("--cadence", choices=Newsletter.Cadence.values)
        parser.add_argument("--time", dest="send_time", type=_time, metavar="HH:MM", help="local send time")
        parser.add_argument("--weekday", type=int, choices=range(7), metavar="0-6", help="0 = Monday (weekly)")
        parser.add_argument("--cron", metavar='"M H DOM MON DOW"', help="with --cadence cron")
        parser.add_argument("--timezone", metavar="ZONE", help="IANA name, e.g. Europe/Berlin")
        parser.add_argument("--approval", choices=Newsletter.Approval.values)
        parser.add_argument("--deadline", dest="approval_deadline_minutes", type=int, metavar="MINUTES")
        parser.add_argument("--send-if-unapproved", dest="send_if_unapproved", action="store_true", default=None)
        parser.add_argument("--skip-if-unapproved", dest="send_if_unapproved", action="store_false")
        parser.add_argument("--max-stories", dest="max_stories", type=int)
        parser.add_argument("--private-archive", dest="public_archive", action="store_false", default=None)

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def _save(self, newsletter: Newsletter, options: dict) -> None:
        for field in SCHEDULE_FIELDS:
            if options.get(field) is not None:
                setattr(newsletter, field, options[field])
        try:
            with transaction.atomic():
                newsletter.save()
                schedule.sync_schedule(newsletter)
        except schedule.ScheduleError as exc:
            raise CommandError(str(exc)) from None
        self._describe(newsletter)

    def do_create(self, slug, name, **options):
        if Newsletter.objects.filter(slug=slug).exists():
            raise CommandError(f"a newsletter {slug!r} exists; change it with `newsdigest newsletters schedule {slug}`")
        self._save(Newsletter(slug=slug, name=name), options)

    def do_schedule(self, slug, **options):
        self._save(self._get(slug), options)

    def do_list(self, **_):
        for newsletter in Newsletter.objects.order_by("slug"):
            self._describe(newsletter)

    def do_sync(self, **_):
        for newsletter in Newsletter.objects.order_by("slug"):
            try:
                schedule.sync_schedule(newsletter)
            except schedule.ScheduleError as exc:
                self.stderr.write(str(exc))
                continue
            self._describe(newsletter)

    def do_tick(self, slug, **_):
        digest_id = tasks.newsletter_tick(self._get(slug).pk)
        self.stdout.write(f"digest {digest_id} built" if digest_id else "no digest: this slot already has one "
                          "or there is nothing new")

    @staticmethod
    def _get(slug: str) -> Newsletter:
        try:
            return Newsletter.objects.get(slug=slug)
        except Newsletter.DoesNotExist:
            raise CommandError(f"no newsletter with slug {slug!r}") from None

    def _describe(self, newsletter: Newsletter) -> None:
        mode = newsletter.approval if newsletter.approval == "auto" else (
            f"editor, {newsletter.approval_deadline_minutes} min, then "
            f"{'send' if newsletter.send_if_unapproved else 'skip'}")
        line = f"{newsletter.slug:<16} {newsletter.cadence:<8} {newsletter.timezone:<20} approval: {mode}"
        if newsletter.cadence != Newsletter.Cadence.MANUAL:
            try:
                runs = schedule.next_runs(newsletter, timezone.now(), 2)
            except schedule.ScheduleError as exc:
                line += f"  (schedule error: {exc})"
            else:
                line += "  next: " + ", ".join(r.isoformat(timespec="minutes") for r in runs)
        self.stdout.write(line)
