"""`newsdigest sweep [--every SECONDS]`: the delivery safety net from the command line.

The same work as the `sweep_deliveries` beat task (every NEWSDIGEST_DELIVERY_SWEEP_SECONDS
under `newsdigest beat`; `deliver.sweep_and_publish`): rows of dead workers back to the queue, lost
messages re-published.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from worker import deliver


class Command(BaseCommand):
    help = "Re-queue deliveries whose worker died or whose message was lost; with --every, keep doing it."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, metavar="SECONDS", help="repeat forever at this interval")

    def handle(self, *args, every, **options):
        while True:
            try:
                nudged = deliver.sweep_and_publish()
            except deliver.PUBLISH_ERRORS as exc:
                # The rows stay queued with no message believed in flight: the next pass publishes them.
                if every is None:
                    raise CommandError(f"the broker did not take the re-published deliveries: {exc}") from None
                self.stderr.write(f"broker unreachable, retrying in {every:g} s: {exc}")
                nudged = None
            if every is None:
                self.stdout.write(f"{nudged} deliveries re-published")
                return
            close_old_connections()
            time.sleep(every)
