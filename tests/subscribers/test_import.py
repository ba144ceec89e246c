"""Subscriber CSV import at scale: one transaction, streamed, capped, no second confirmation, indexed look-ups."""

from io import BytesIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from worker import subscribers
from worker.models import Newsletter, Subscriber, Subscription


@pytest.fixture
def newsletter():
    return Newsletter.objects.create(name="Morning Brief", slug="brief", from_email="brief@news.example")


def run_import(newsletter, data: bytes, *, confirmed: bool = False) -> subscribers.ImportReport:
    return subscribers.import_csv(BytesIO(data), newsletter, confirmed=confirmed)


def people(n: int, start: int = 0) -> bytes:
    return b"email,name\n" + b"".join(b"p%d@example.com,P %d\n" % (i, i) for i in range(start, start + n))


@pytest.mark.django_db
def test_reimporting_the_same_csv_mails_no_second_confirmation(newsletter):
    run_import(newsletter, people(3))
    assert len(mail.outbox) == 3
    report = run_import(newsletter, people(3))
    assert len(mail.outbox) == 3
    assert (report.added, report.subscribed, report.unchanged, report.awaiting_confirmation) == (0, 0, 3, 3)


@pytest.mark.django_db
def test_reimport_mails_only_rows_new_to_the_newsletter(newsletter):
    run_import(newsletter, people(2))
    run_import(newsletter, people(3))
    assert [m.to for m in mail.outbox[2:]] == [["p2@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_a_bad_byte_after_good_rows_writes_nothing_and_names_the_line(newsletter):
    data = people(2500, start=0) + b"caf\xe9@example.com,Bad\n" + people(5, start=9000)[len(b"email,name\n"):]
    with pytest.raises(subscribers.ImportRefused, match=r"line 2502: byte 0xe9 at column 4 is not UTF-8"):
        run_import(newsletter, data, confirmed=True)
    assert not Subscriber.objects.exists() and not Subscription.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_runaway_quote_writes_nothing(newsletter):
    runaway = b'"b@example.com\n' + b"x" * 1000 * 200  # an unclosed quote swallowing the rest of the file
    with pytest.raises(subscribers.ImportRefused, match=r"lines 3-135: broken CSV: field larger than field limit"):
        run_import(newsletter, b"email\na@example.com\n" + runaway.replace(b"x" * 1000, b"x" * 999 + b"\n"),
                   confirmed=True)
    assert not Subscriber.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_stream_over_the_size_cap_is_refused_without_reading_it_whole(newsletter, settings):
    settings.NEWSDIGEST_IMPORT_MAX_BYTES = 10_000
    stream = BytesIO(people(5000))
    with pytest.raises(subscribers.ImportRefused, match="NEWSDIGEST_IMPORT_MAX_BYTES"):
        subscribers.import_csv(stream, newsletter, confirmed=True)
    assert stream.tell() < 10_000 + settings.NEWSDIGEST_IMPORT_MAX_LINE_BYTES
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_a_file_without_line_breaks_is_refused_after_the_line_cap(newsletter, settings):
    stream = BytesIO(b"email\n" + b"x" * 5_000_000)
    with pytest.raises(subscribers.ImportRefused, match="line 2 is longer than"):
        subscribers.import_csv(stream, newsletter, confirmed=True)
    assert stream.tell() <= 6 + settings.NEWSDIGEST_IMPORT_MAX_LINE_BYTES + 1


@pytest.mark.django_db(transaction=True)
def test_more_rows_than_the_row_cap_writes_nothing(newsletter, settings):
    settings.NEWSDIGEST_IMPORT_MAX_ROWS = 100
    with pytest.raises(subscribers.ImportRefused, match="line 102: more than 100 rows"):
        run_import(newsletter, people(150), confirmed=True)
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_the_command_refuses_an_oversized_file_in_one_line(newsletter, settings, tmp_path):
    settings.NEWSDIGEST_IMPORT_MAX_BYTES = 1000
    path = tmp_path / "big.csv"
    path.write_bytes(people(200))
    with pytest.raises(CommandError) as refused:
        call_command("subscribers", "import", str(path), "--newsletter", "brief")
    assert "NEWSDIGEST_IMPORT_MAX_BYTES" in str(refused.value) and "\n" not in str(refused.value)
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_an_address_known_in_another_case_is_matched_not_duplicated(newsletter):
    Subscriber.objects.create(email="Ann.Lee@example.com", status=Subscriber.Status.ACTIVE)
    report = run_import(newsletter, b"email\nann.lee@example.com\n", confirmed=True)
    assert (report.added, report.subscribed) == (0, 1)
    assert Subscriber.objects.get().subscriptions.get().status == Subscription.Status.ACTIVE


@pytest.mark.django_db
def test_addresses_differing_only_in_case_cannot_both_be_stored():
    Subscriber.objects.create(email="Ann@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.create(email="ann@example.com")


@pytest.mark.django_db
def test_import_writes_in_bulk_not_row_by_row(newsletter):
    with CaptureQueriesContext(connection) as captured:
        run_import(newsletter, people(400), confirmed=True)
    assert Subscription.objects.count() == 400
    assert len(captured) <= 400 // 10


@pytest.mark.django_db
def test_confirmed_import_activates_pending_subscribers(newsletter):
    run_import(newsletter, people(2))
    report = run_import(newsletter, people(2), confirmed=True)
    assert report.subscribed == 2
    assert set(Subscriber.objects.values_list("status", flat=True)) == {Subscriber.Status.ACTIVE}
    assert set(Subscription.objects.values_list("status", flat=True)) == {Subscription.Status.ACTIVE}
