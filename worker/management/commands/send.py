"""`newsdigest send DIGEST_ID`: start, steer and watch the sending of one digest.

Starting is a guarded approved -> sending transition done here, synchronously, so a
second concurrent `send` of the same digest is refused with a clear error; the fan-out
itself runs on the workers. Pause, resume and cancel take effect within seconds: workers
re-check the digest's status about once a second.
"""

import json
import sys
from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from worker import deliver, ops
from worker.broker import BrokerUnavailable, require_broker
from worker.models import Digest, Subscriber, Subscription

# What works instead, for a digest that is not (or no longer) approved.
NEXT_STEP = {
    Digest.Status.DRAFT: "approve it first: newsdigest digest approve {pk}",
    Digest.Status.SENDING: "it is under way; follow it with: newsdigest send {pk} --status",
    Digest.Status.PAUSED: "continue it with: newsdigest send {pk} --resume",
    Digest.Status.SENT: "retry its failed deliveries with: newsdigest send {pk} --retry-failed, "
                        "or make a new digest: newsdigest digest build {slug}",
    Digest.Status.CANCELLED: "make a new digest: newsdigest digest build {slug}",
}


class Command(BaseCommand):
    help = "Send an approved digest (queue the fan-out and return), or pause/resume/cancel/report a send."

    def add_arguments(self, parser):
        parser.add_argument("digest_id", type=int, metavar="DIGEST_ID")
        parser.add_argument("--dry-run", action="store_true", help="say who would get it; send nothing")
        parser.add_argument("--test-to", metavar="EMAIL", help="send one test copy (no list headers)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--show", type=int, default=10, metavar="N", help="--dry-run lists the first N (10)")
        steer = parser.add_mutually_exclusive_group()
        steer.add_argument("--pause", action="store_true", help="stop a sending digest (resumable)")
        steer.add_argument("--resume", action="store_true", help="continue a paused digest")
        steer.add_argument("--cancel", action="store_true", help="stop for good; unsent rows are skipped")
        steer.add_argument("--retry-failed", action="store_true", help="queue the failed deliveries again")
        steer.add_argument("--status", action="store_true", help="progress report as JSON")

    def handle(self, *args, digest_id, dry_run, test_to, yes, show, pause, resume, cancel, retry_failed, status,
               **options):
        try:
            digest = Digest.objects.select_related("newsletter").get(pk=digest_id)
        except Digest.DoesNotExist:
            raise CommandError(f"no digest {digest_id}") from None
        try:
            if status:
                self.stdout.write(json.dumps(deliver.report(digest_id), indent=2, default=str))
            elif pause or resume or cancel or retry_failed:
                # ops.* leaves the same audit trail as the ops console and the token API.
                action = ("pause" if pause else "resume" if resume else "cancel" if cancel else "retry-failed")
                if action in ("resume", "retry-failed"):
                    require_broker()
                self.stdout.write(ops.perform(action, digest_id))
            elif test_to:
                deliver.send_test(digest, test_to)
                self.stdout.write(f"test copy of digest {digest_id} sent to {test_to}")
            else:
                self.start(digest, dry_run=dry_run, yes=yes, show=show)
        except (deliver.SendRefused, BrokerUnavailable) as exc:
            raise CommandError(str(exc)) from None

    def start(self, digest: Digest, *, dry_run: bool, yes: bool, show: int) -> None:
        if digest.status != Digest.Status.APPROVED:
            step = NEXT_STEP[digest.status].format(pk=digest.pk, slug=digest.newsletter.slug)
            raise CommandError(f"digest {digest.pk} is {digest.status}; only an approved digest can be sent: {step}")
        recipients = deliver.eligible_subscribers(digest).filter(paused=False)
        if dry_run:
            self.dry_run(digest, recipients, show)
            return
        require_broker()
        recipients = recipients.count()
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("refusing to send without confirmation: no terminal to ask on; pass --yes")
            answer = input(f"Send digest {digest.pk} \"{digest.subject}\" to {recipients} subscribers? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("not sent")
        ops.send(digest.pk)
        self.stdout.write(f"sending digest {digest.pk} to {recipients} subscribers; "
                          f"follow it with: newsdigest send {digest.pk} --status")

    def dry_run(self, digest: Digest, recipients, show: int) -> None:
        total = recipients.count()
        self.stdout.write(f"would send digest {digest.pk} \"{digest.subject}\" to {total} subscribers"
                          + (":" if total else ""))
        for email in recipients.order_by("email").values_list("email", flat=True)[:max(show, 0)]:
            self.stdout.write(f"  {email}")
        if total > show > 0:
            self.stdout.write(f"  ... and {total - show} more")
        counts = Counter()
        rows = Subscription.objects.filter(newsletter_id=digest.newsletter_id).values_list(
            "subscriber__status", "status", "subscriber__paused")
        for subscriber_status, subscription_status, paused in rows:
            if subscriber_status != Subscriber.Status.ACTIVE:
                counts[subscriber_status] += 1
            elif subscription_status != Subscription.Status.ACTIVE:
                counts[subscription_status] += 1
            else:
                counts["paused" if paused else "will receive"] += 1
        order = ["will receive", "pending", "paused", "unsubscribed", "bounced", "complained"]
        summary = ", ".join(f"{counts[label]} {label}" for label in order if counts[label])
        self.stdout.write(f"subscribers of {digest.newsletter.slug}: {summary or 'none'}")
