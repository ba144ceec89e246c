"""`newsdigest inbound < message.eml`: one inbound mail (a bounce, a complaint or a mailto unsubscribe).

How to wire it to a mail server (Postfix aliases / pipe): see the docstring of worker/bounces.py.
"""

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from worker import bounces

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and retries


class Command(BaseCommand):
    help = ("Read one RFC 822 message on stdin: act on a bounce or complaint about a message this service "
            "sent, or unsubscribe by mail.")

    def add_arguments(self, parser):
        parser.add_argument("--recipient", default="",
                            help="the envelope recipient (the VERP bounce address); default: $ORIGINAL_RECIPIENT "
                                 "or $RECIPIENT as Postfix's local delivery sets them")

    def handle(self, *args, **options):
        raw = read_bounded(sys.stdin.buffer, settings.NEWSDIGEST_INBOUND_MAX_BYTES)
        if not raw.strip():
            raise CommandError("no message on stdin")
        recipient = options["recipient"] or os.environ.get("ORIGINAL_RECIPIENT") or os.environ.get("RECIPIENT", "")
        try:
            # Mail it does not understand or refuses is a line on stdout and exit 0: the MTA must
            # not bounce a bounce back to where it came from.
            self.stdout.write(bounces.handle_inbound(raw, envelope_recipient=recipient))
        except DatabaseError as exc:
            self.stderr.write(f"newsdigest inbound: database unavailable, try later: {exc}")
            sys.exit(EX_TEMPFAIL)


def read_bounded(stream, limit: int) -> bytes:
    """Up to limit + 1 bytes (so the size check sees an oversized message); the rest is read and
    dropped, so the MTA writing into the pipe never sees it broken."""
    raw = stream.read(limit + 1)
    while stream.read(1 << 16):
        pass
    return raw
