"""The per-message `sent` mark (issue 18): on PostgreSQL it is sent at once and its reply read later, so the
next message's SMTP exchange overlaps the round trip; the duplicate window stays what it was."""

import sqlite3
import time

import psycopg
import pytest
from aiosmtpd.controller import Controller
from django.db import OperationalError, connection
from django.utils import timezone

from tests.helpers.deliveries import fanned_out_digest
from tests.helpers.mail import RecordingHandler
from tests.helpers.processes import free_port
from worker import deliver
from worker.deliver import claims
from worker.models import Delivery

postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="libpq's asynchronous interface")


def _fanned_out(subscribers: int) -> list[int]:
    digest = fanned_out_digest(subscribers)
    return list(Delivery.objects.filter(digest=digest).order_by("pk").values_list("pk", flat=True))


def _other_connection():
    """A connection of its own to the test database, as another process would see it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return sqlite3.connect(db["NAME"], timeout=10, check_same_thread=False)  # read in the SMTP server's thread
    return psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"],
                           dbname=db["NAME"], autocommit=True)


def _becomes_sent(other, pk: int, within: float = 10.0) -> bool:
    table = Delivery._meta.db_table
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = other.execute(f'SELECT status FROM "{table}" WHERE id = {int(pk)}').fetchone()
        if row and row[0] == Delivery.Status.SENT:
            return True
        time.sleep(0.01)
    return False


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_mark_is_committed_before_its_reply_is_read():
    ids = _fanned_out(1)
    rows = deliver.claim(ids, "me")
    marks = claims.SentMarks("me")
    marks.send(rows[0].pk)
    with _other_connection() as other:
        assert _becomes_sent(other, rows[0].pk)
    assert marks.in_flight == rows[0].pk  # the reply is still unread
    marks.settle()
    assert (marks.in_flight, marks.lost) == (None, [])


@pytest.mark.django_db(transaction=True)
def test_each_message_is_marked_sent_while_the_next_one_is_sent(smtp):
    ids = _fanned_out(4)
    order = {row.subscriber.email: row.pk for row in deliver.claim(ids, "peek")}
    Delivery.objects.filter(pk__in=ids).update(status=Delivery.Status.QUEUED, claimed_by="", attempts=0)
    seen: list[bool] = []
    with _other_connection() as other:
        previous = []

        def check(address: str) -> None:
            # Inside the next message's SMTP exchange: the previous message's mark must commit meanwhile.
            if previous:
                seen.append(_becomes_sent(other, previous[-1]))
            previous.append(order[address])

        smtp.rcpt_reply = check  # None: the recipient is accepted
        assert deliver.send_batch(ids).counts["sent"] == 4
    assert seen == [True, True, True]
    assert Delivery.objects.filter(status=Delivery.Status.SENT, possible_duplicate=False).count() == 4


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_mark_the_database_refuses_raises_on_settle_and_the_connection_stays_usable():
    ids = _fanned_out(1)
    rows = deliver.claim(ids, "me")
    table = Delivery._meta.db_table
    with _other_connection() as other, connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '200ms'")
        with other.transaction():
            other.execute(f'SELECT id FROM "{table}" WHERE id = %s FOR UPDATE', [rows[0].pk])
            marks = claims.SentMarks("me")
            marks.send(rows[0].pk)  # waits on the row lock until the statement timeout cancels it
            with pytest.raises(OperationalError, match="statement timeout"):
                marks.settle()
        cursor.execute("RESET statement_timeout")
    assert Delivery.objects.get(pk=rows[0].pk).status == Delivery.Status.SENDING
    assert marks.in_flight is None


class _DropsAfterTheFirst(RecordingHandler):
    """Accepts one message, then hangs up at the next MAIL FROM and stops listening: the worker's reconnect fails."""

    controller: Controller

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.messages:
            self.controller.server.close()
            server.transport.abort()
            return "421 4.4.2 closing"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)


@pytest.mark.django_db(transaction=True)
def test_a_server_lost_after_a_sent_message_releases_the_rest_with_the_mark_settled(settings):
    handler = _DropsAfterTheFirst()
    handler.controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    handler.controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", handler.controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    deliver.close_connection()
    try:
        ids = _fanned_out(3)
        with pytest.raises(deliver.DeliveryTransientError):
            deliver.send_batch(ids)
    finally:
        deliver.close_connection()
        handler.controller.stop()
    statuses = sorted(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == [Delivery.Status.QUEUED, Delivery.Status.QUEUED, Delivery.Status.SENT]


@pytest.mark.django_db
def test_a_mark_stores_the_moment_the_message_went_out():
    ids = _fanned_out(1)
    rows = deliver.claim(ids, "me")
    before = timezone.now()
    marks = claims.SentMarks("me")
    marks.send(rows[0].pk)
    marks.settle()
    after = timezone.now()
    assert before <= Delivery.objects.get(pk=rows[0].pk).sent_at <= after
