"""Mail servers for tests: an in-process recording SMTP server, and tests/helpers/smtp_sink.py as its own
process (for workers in other processes, with temporary failures and dropped connections)."""

import subprocess
import sys
import threading
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.helpers.processes import free_port
from tests.helpers.smtp_sink import ehlo

SINK = Path(__file__).with_name("smtp_sink.py")


class RecordingHandler:
    """Keeps every accepted message; `reply` (DATA), `rcpt_reply` (RCPT) and `mail_reply` (MAIL) let a test
    answer with an SMTP error instead; `pipelining` offers PIPELINING (RFC 2920) in the EHLO reply."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.reply = None
        self.rcpt_reply = None
        self.mail_reply = None
        self.pipelining = False
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        return ehlo(session, hostname, responses, self.pipelining)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply is not None and (refusal := self.mail_reply(address)):
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply is not None and (refusal := self.rcpt_reply(address)):
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.reply is not None:
            return self.reply(envelope)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server():
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


@contextmanager
def smtp_sink(record: Path, tempfail: float = 0.0, drop: float = 0.0, seed: int = 1, pipelining: bool = False):
    """tests/helpers/smtp_sink.py in its own process; yields its port. Accepted messages are lines in `record`."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SINK), "--port", str(port), "--record", str(record),
         "--tempfail", str(tempfail), "--drop", str(drop), "--seed", str(seed),
         *(["--pipelining"] if pipelining else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        if proc.stdout.readline().strip() != "ready":
            raise AssertionError(f"smtp sink did not start:\n{proc.stdout.read()}")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def sink_record(record: Path) -> list[tuple[str, str]]:
    """(Message-ID, recipient) per accepted message, in order."""
    if not record.exists():
        return []
    return [tuple(line.split("\t")) for line in record.read_text().splitlines() if "\t" in line]
