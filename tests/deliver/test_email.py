import re
from email.utils import parseaddr

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.helpers.factories import make_digest
from worker import deliver, render
from worker.models import Subscriber

pytestmark = pytest.mark.django_db


def send(digest, subscriber, smtp, test: bool = False):
    deliver.build_message(digest, subscriber, render.ensure_rendered(digest), test=test).send()
    return smtp.messages[-1]


def reader(**fields) -> Subscriber:
    return Subscriber.objects.create(**{"email": "zoe@example.org", "name": "Zoë Ångström",
                                        "status": Subscriber.Status.ACTIVE, **fields})


def test_digest_carries_the_list_headers_a_bulk_sender_needs(smtp):
    digest = make_digest(2, name="Nouvelles du Matin", from_name="Rédaction Matin",
                         from_email="news@news.example.com")
    digest.subject = "Les nouvelles — déjà là"
    digest.save()
    message = send(digest, reader(), smtp)
    assert parseaddr(str(message["From"])) == ("Rédaction Matin", "news@news.example.com")
    assert str(message["To"]) == "Zoë Ångström <zoe@example.org>"
    assert str(message["Subject"]) == "Les nouvelles — déjà là"
    assert message["Reply-To"] == "editor@example.com"
    assert message["Date"] is not None
    assert message["Message-ID"].endswith(f"@{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>")
    assert message["List-Id"] == f'"Nouvelles du Matin" <demo.{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>'
    https, mailto = [part.strip(" <>") for part in message["List-Unsubscribe"].split(",")]
    assert https.startswith(settings.SITE_URL + "/u/") and mailto.startswith("mailto:")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Precedence"] == "bulk"


def test_non_ascii_subject_and_names_are_rfc2047_encoded_on_the_wire(smtp):
    digest = make_digest(1, from_name="Rédaction")
    digest.subject = "Café news"
    digest.save()
    raw = send(digest, reader(), smtp).as_bytes()
    headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    assert headers.isascii()
    assert b"=?utf-8?" in headers.lower()


def test_no_field_can_inject_a_header(smtp):
    digest = make_digest(1, name="Daily\r\nBcc: list@evil.example", from_name="Ed\nBcc: x@evil.example")
    digest.subject = "Hello\r\nBcc: victim@evil.example"
    digest.save()
    message = send(digest, reader(name="Mallory\r\nBcc: m@evil.example"), smtp)
    assert message["Bcc"] is None
    assert str(message["Subject"]) == "Hello Bcc: victim@evil.example"
    assert "Mallory Bcc: m@evil.example" in str(message["To"])


def test_a_test_send_has_no_list_headers(smtp):
    digest = make_digest(1)
    message = send(digest, reader(), smtp, test=True)
    for header in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Precedence"):
        assert message[header] is None
    assert message["Message-ID"].endswith(f"@{settings.NEWSDIGEST_MESSAGE_ID_DOMAIN}>")


def test_text_format_subscribers_get_only_the_text_part(smtp):
    digest = make_digest(1)
    message = send(digest, reader(format=Subscriber.Format.TEXT), smtp)
    assert message.get_content_type() == "text/plain"


def test_preview_writes_exactly_what_is_mailed(smtp, tmp_path, monkeypatch):
    from django.core import signing

    # Links carry signed timestamps (one-second resolution): pin the stamp so a second boundary
    # between the send and the preview cannot make two honest renders differ.
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: "1xZBGc")
    digest = make_digest(3)
    subscriber = reader()
    message = send(digest, subscriber, smtp)
    for flag, part in (([], "html"), (["--text"], "plain")):
        out = tmp_path / f"preview.{part}"
        call_command("digest", "preview", str(digest.pk), "--out", str(out), "--subscriber", subscriber.email, *flag)
        mailed = message.get_body(preferencelist=(part,)).get_content().replace("\r\n", "\n")
        # Only the delivery stamp of tracked links (worker/clicks.py) is not known to a preview.
        mailed = re.sub(r"\?t=[0-9a-f]+", "", mailed)
        assert out.read_text(encoding="utf-8") == mailed
