from django.core.management.base import BaseCommand, CommandError

from worker import deliver, tasks
from worker.models import Digest


class Command(BaseCommand):
    help = "Send an approved digest: queue the fan-out to the workers and return."

    def add_arguments(self, parser):
        parser.add_argument("digest_id", type=int, metavar="DIGEST_ID")
        parser.add_argument("--dry-run", action="store_true", help="say who would get it; send nothing")
        parser.add_argument("--test-to", metavar="EMAIL", help="send one test copy (no list headers)")

    def handle(self, *args, digest_id, dry_run, test_to, **options):
        try:
            digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
        except Digest.DoesNotExist:
            raise CommandError(f"no digest {digest_id}") from None
        if test_to:
            deliver.send_test(digest, test_to)
            self.stdout.write(f"test copy of digest {digest_id} sent to {test_to}")
            return
        if digest.status != Digest.Status.APPROVED:
            raise CommandError(f"digest {digest_id} is {digest.status}; approve it first "
                               f"(newsdigest digest approve {digest_id})")
        recipients = deliver.eligible_subscribers(digest).count()
        if dry_run:
            self.stdout.write(f"would send digest {digest_id} to {recipients} subscribers")
            return
        try:
            tasks.start_send.delay(digest_id)
        except deliver.SendRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"sending digest {digest_id} to {recipients} subscribers; "
                          f"progress: {deliver.progress(digest_id)}")
