"""`newsdigest inbound < message.eml`: one inbound mail (a DSN bounce or a mailto unsubscribe).

How to wire it to a mail server (Postfix aliases / pipe): see the docstring of worker/bounces.py.
"""

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from worker import bounces

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and retries


class Command(BaseCommand):
    help = "Read one RFC 822 message on stdin: suppress DSN-bounced recipients or unsubscribe by mail."

    def handle(self, *args, **options):
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            raise CommandError("no message on stdin")
        try:
            self.stdout.write(bounces.handle_inbound(raw))
        except DatabaseError as exc:
            self.stderr.write(f"newsdigest inbound: database unavailable, try later: {exc}")
            sys.exit(EX_TEMPFAIL)
