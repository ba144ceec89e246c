"""`newsdigest send DIGEST_ID`: start, steer and watch the sending of one digest.

Starting is a guarded approved -> sending transition done here, synchronously, so a
second concurrent `send` of the same digest is refused with a clear error; the fan-out
itself runs on the workers. Pause, resume and cancel take effect within seconds: workers
re-check the digest's status about once a second.
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from worker import deliver, ops
from worker.models import Digest


class Command(BaseCommand):
    help = "Send an approved digest (queue the fan-out and return), or pause/resume/cancel/report a send."

    def add_arguments(self, parser):
        parser.add_argument("digest_id", type=int, metavar="DIGEST_ID")
        parser.add_argument("--dry-run", action="store_true", help="say who would get it; send nothing")
        parser.add_argument("--test-to", metavar="EMAIL", help="send one test copy (no list headers)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        steer = parser.add_mutually_exclusive_group()
        steer.add_argument("--pause", action="store_true", help="stop a sending digest (resumable)")
        steer.add_argument("--resume", action="store_true", help="continue a paused digest")
        steer.add_argument("--cancel", action="store_true", help="stop for good; unsent rows are skipped")
        steer.add_argument("--status", action="store_true", help="progress report as JSON")

    def handle(self, *args, digest_id, dry_run, test_to, yes, pause, resume, cancel, status, **options):
        try:
            digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
        except Digest.DoesNotExist:
            raise CommandError(f"no digest {digest_id}") from None
        try:
            if status:
                self.stdout.write(json.dumps(deliver.report(digest_id), indent=2, default=str))
            elif pause or resume or cancel:
                # ops.* leaves the same audit trail as the ops console and the token API.
                action = "pause" if pause else "resume" if resume else "cancel"
                self.stdout.write(ops.perform(action, digest_id))
            elif test_to:
                deliver.send_test(digest, test_to)
                self.stdout.write(f"test copy of digest {digest_id} sent to {test_to}")
            else:
                self.start(digest, dry_run=dry_run, yes=yes)
        except deliver.SendRefused as exc:
            raise CommandError(str(exc)) from None

    def start(self, digest: Digest, *, dry_run: bool, yes: bool) -> None:
        if digest.status != Digest.Status.APPROVED:
            raise CommandError(f"digest {digest.pk} is {digest.status}; only an approved digest can be sent "
                               f"(newsdigest digest approve {digest.pk})")
        recipients = deliver.eligible_subscribers(digest).filter(paused=False).count()
        if dry_run:
            self.stdout.write(f"would send digest {digest.pk} to {recipients} subscribers")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("refusing to send without confirmation: no terminal to ask on; pass --yes")
            answer = input(f"Send digest {digest.pk} \"{digest.subject}\" to {recipients} subscribers? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("not sent")
        ops.send(digest.pk)
        self.stdout.write(f"sending digest {digest.pk} to {recipients} subscribers; "
                          f"follow it with: newsdigest send {digest.pk} --status")
