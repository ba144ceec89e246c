"""SMTP PIPELINING (RFC 2920, issue 18): when the server offers it, MAIL FROM, RCPT TO and DATA go out in
one write and the envelope costs one wait instead of three. Replies must stay in step with commands through
every refusal, or each later message on the kept-open connection would read its predecessor's replies."""

import smtplib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.mail import EmailMessage

from tests.helpers.factories import approved_digest
from tests.helpers.processes import free_port
from worker import deliver, render
from worker.deliver import sending
from worker.models import Delivery, Subscriber


@pytest.fixture
def writes(monkeypatch) -> list[bytes]:
    """Every write the SMTP client makes, as bytes."""
    sent: list[bytes] = []
    real_send = smtplib.SMTP.send

    def send(self, s):
        sent.append(s.encode("ascii") if isinstance(s, str) else s)
        return real_send(self, s)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    return sent


@pytest.fixture
def pipelining(smtp):
    smtp.pipelining = True
    return smtp


@pytest.fixture
def digest(settings):
    settings.NEWSDIGEST_SEND_BATCH_SIZE = 3
    digest = approved_digest(3)
    render.ensure_rendered(digest)
    return digest


def started(digest) -> list[int]:
    deliver.begin_send(digest.pk)
    return deliver.fan_out(digest.pk)[0]


def recipients(smtp) -> list[str]:
    return [m["To"].addresses[0].addr_spec for m in smtp.messages]


def envelope_writes(writes: list[bytes]) -> list[bytes]:
    """The writes that open with an envelope command (smtplib writes its own commands in lower case)."""
    return [w for w in writes if w[:4].upper() in (b"MAIL", b"RCPT", b"DATA")]


@pytest.mark.django_db
def test_with_pipelining_offered_the_envelope_goes_out_in_one_write(digest, pipelining, writes):
    deliver.send_batch(started(digest))
    envelope = envelope_writes(writes)
    assert len(envelope) == 3
    assert all(w.startswith(b"MAIL FROM:") and b"\r\nRCPT TO:" in w and w.endswith(b"\r\nDATA\r\n")
               for w in envelope)
    assert len(pipelining.messages) == 3


@pytest.mark.django_db
def test_without_pipelining_each_envelope_command_is_its_own_write(digest, smtp, writes):
    deliver.send_batch(started(digest))
    assert all(w.count(b"\r\n") == 1 for w in envelope_writes(writes))
    assert [w[:4].upper() for w in envelope_writes(writes)] == [b"MAIL", b"RCPT", b"DATA"] * 3
    assert len(smtp.messages) == 3


@pytest.mark.django_db
def test_a_recipient_refused_under_pipelining_fails_its_row_and_the_next_messages_go_out(digest, pipelining):
    batch = started(digest)
    first = Delivery.objects.select_related("subscriber").get(pk=batch[0]).subscriber.email
    pipelining.rcpt_reply = lambda address: (f"550 5.1.1 <{address}>: User unknown" if address == first
                                             else None)
    result = deliver.send_batch(batch)
    assert (result.counts["failed"], result.counts["sent"]) == (1, 2)
    assert Subscriber.objects.get(email=first).status == Subscriber.Status.BOUNCED
    assert first not in recipients(pipelining) and len(recipients(pipelining)) == 2


@pytest.mark.django_db
def test_a_sender_deferred_under_pipelining_requeues_its_row_and_the_next_messages_go_out(digest, pipelining):
    refused = []

    def mail_reply(address):
        if not refused:
            refused.append(address)
            return "451 4.3.0 try later"
        return None

    pipelining.mail_reply = mail_reply
    result = deliver.send_batch(started(digest))
    assert (result.counts["requeued"], result.counts["sent"]) == (1, 2)
    assert len(pipelining.messages) == 2


@pytest.mark.django_db
def test_lines_starting_with_a_dot_arrive_intact_under_pipelining(pipelining):
    mailer = sending.Mailer()
    body = ".a line that starts with a dot\n..and one with two\n.\nend\n"
    try:
        outcome = mailer.send(EmailMessage("dots", body, "news@example.com", ["reader@example.com"]))
    finally:
        mailer.close()
    assert outcome.kind == "sent"
    assert pipelining.messages[0].get_content().replace("\r\n", "\n") == body


class ScriptedServer:
    """An SMTP server that answers each command from a script and records what it reads: for replies no
    real server library gives (a 354 to a pipelined DATA after refusing the only recipient)."""

    def __init__(self, replies: dict[bytes, bytes]):
        self.replies = replies
        self.received = b""
        self.closed = threading.Event()
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))

    def serve_one(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"220 scripted ESMTP\r\n")
            buffer = b""
            while chunk := conn.recv(65536):
                self.received += chunk
                buffer += chunk
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                    if verb in self.replies:
                        conn.sendall(self.replies[verb])
                    if verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        self.closed.set()
                        return
        self.closed.set()


@contextmanager
def scripted(settings, replies: dict[bytes, bytes]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(replies)
    thread = threading.Thread(target=server.serve_one, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield server
    finally:
        server.listener.close()


def test_a_server_that_opens_data_after_refusing_the_recipient_is_hung_up_on_not_sent_a_message(settings):
    replies = {b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n", b"MAIL": b"250 OK\r\n",
               b"RCPT": b"550 5.1.1 no such user\r\n", b"DATA": b"354 go ahead\r\n"}
    with scripted(settings, replies) as server:
        mailer = sending.Mailer()
        outcome = mailer.send(EmailMessage("s", "body text", "news@example.com", ["gone@example.com"]))
        assert server.closed.wait(5), "the client kept the connection open in the middle of DATA"
    assert (outcome.kind, outcome.recipient_refused) == ("permanent", True)
    assert b"body text" not in server.received and b"\r\n.\r\n" not in server.received
    assert mailer.backend is None


def test_a_pipelined_data_refused_by_the_server_is_transient_and_sends_no_message(settings):
    replies = {b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n", b"MAIL": b"250 OK\r\n", b"RCPT": b"250 OK\r\n",
               b"DATA": b"451 4.3.0 queue full\r\n", b"RSET": b"250 OK\r\n"}
    with scripted(settings, replies) as server:
        mailer = sending.Mailer()
        try:
            outcome = mailer.send(EmailMessage("s", "body text", "news@example.com", ["reader@example.com"]))
        finally:
            mailer.close()
    assert (outcome.kind, outcome.reply) == ("transient", "451 4.3.0 queue full")
    assert b"body text" not in server.received and b"\r\nrset\r\n" in server.received.lower()
