"""Serialising a message without the email package's costly defaults (issue 18): header lines that need no
folding written as they are, a random boundary set before serialisation, the body written in one piece; the
bytes are Django's otherwise."""

import random
import re
from email.policy import compat32

import pytest

from tests.helpers.factories import make_digest
from worker import deliver, render
from worker.deliver import dkim, mime
from worker.models import Subscriber

pytestmark = pytest.mark.django_db

_ALPHABET = "abcXYZ019 ,;:=?<>@\"'()[]\\/.-_\t" + "éß—"


def _values() -> list[str]:
    chosen = ["plain", "two words", "a  double space", " leading", "trailing ", "x" * 70, "y " * 40, "z" * 200,
              "Zoë Ångström <zoe@example.org>", "=?utf-8?q?caf=C3=A9?=", "tab\there", "<a@b>, <mailto:x?subject=y>",
              "", " ", "list, of; things", '"quoted phrase" <q@example.org>']
    rng = random.Random(18)
    chosen += ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 120))) for _ in range(400)]
    return chosen


@pytest.mark.parametrize("linesep", ["\n", "\r\n"])
def test_quick_folding_writes_every_header_as_compat32_does(linesep):
    quick, stock = mime.QUICK_FOLDING.clone(linesep=linesep), compat32.clone(linesep=linesep)
    for name in ("Subject", "List-Unsubscribe", "X"):
        for value in _values():
            assert quick.fold_binary(name, value) == stock.fold_binary(name, value), (name, value)


def _message(digest, subscriber) -> bytes:
    return deliver.message_bytes(deliver.build_message(digest, subscriber, render.ensure_rendered(digest)))


def _boundaries(raw: bytes) -> list[bytes]:
    return re.findall(rb'boundary="([^"]+)"', raw)


def test_a_message_is_the_same_bytes_as_the_email_package_makes_apart_from_its_boundary(monkeypatch):
    digest = make_digest(2, name="Nouvelles du Matin", from_name="Rédaction Matin")
    reader = Subscriber.objects.create(email="zoe@example.org", name="Zoë Ångström " + "long " * 20,
                                       status=Subscriber.Status.ACTIVE)
    quick = _message(digest, reader)
    monkeypatch.setattr(dkim, "quick_serialising", lambda message: None)  # Django's policy and boundary
    stock = deliver.build_message(digest, reader, render.ensure_rendered(digest)).message().as_bytes(linesep="\r\n")

    def normalised(raw: bytes) -> bytes:
        for boundary in _boundaries(raw):
            raw = raw.replace(boundary, b"BOUNDARY")
        return re.sub(rb"Date: [^\r]*\r\n", b"", raw)

    assert normalised(quick) == normalised(stock)


def test_each_message_gets_a_boundary_of_its_own_that_its_text_does_not_contain():
    digest = make_digest(2)
    reader = Subscriber.objects.create(email="zoe@example.org", status=Subscriber.Status.ACTIVE)
    first, second = _message(digest, reader), _message(digest, reader)
    (one,), (two,) = _boundaries(first), _boundaries(second)
    assert one != two and re.fullmatch(rb"=+nd[0-9a-f]{32}==", one)
    assert first.count(one) == 4  # the header, the line before each of the two parts, the closing line
