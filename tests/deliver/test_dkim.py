import re

import dkim
import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ImproperlyConfigured
from dkim import dknewkey

from tests.helpers.factories import make_digest
from tests.helpers.processes import free_port
from worker import deliver, render
from worker.models import Subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory):
    """A fresh RSA key pair made with dkimpy's own helper (openssl underneath); `cryptography` isn't installed."""
    folder = tmp_path_factory.mktemp("dkim")
    dknewkey.GenRSAKeys(str(folder / "key.pem"), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(folder / "key.pem"), str(folder / "key.dns"), verbose=False)
    return folder / "key.pem", (folder / "key.dns").read_bytes().strip()


@pytest.fixture
def signing(settings, dkim_key):
    key_file, dns_record = dkim_key
    settings.NEWSDIGEST_DKIM_SELECTOR = "nd2026"
    settings.NEWSDIGEST_DKIM_DOMAIN = "news.example.com"
    settings.NEWSDIGEST_DKIM_KEY_FILE = str(key_file)

    def dnsfunc(name, timeout=5):
        return dns_record if name == b"nd2026._domainkey.news.example.com." else None

    return dnsfunc


@pytest.fixture
def outbox(settings, outbox):
    """pytest-django swaps in the locmem backend; these tests need the real outbox files."""
    settings.EMAIL_BACKEND = "worker.mail.OutboxBackend"
    return outbox


def message_for_first_subscriber(test: bool = False):
    digest = make_digest(3)
    subscriber = Subscriber.objects.get(email__startswith="ada@")
    return deliver.build_message(digest, subscriber, render.ensure_rendered(digest), test=test)


def test_outbox_message_verifies_and_signs_the_unsubscribe_headers(signing, outbox):
    message_for_first_subscriber().send()
    raw = next(outbox.glob("*.eml")).read_bytes()
    assert dkim.verify(raw, dnsfunc=signing)
    signed = re.search(rb"h=([^;]+);", re.sub(rb"\s+", b"", raw.split(b"DKIM-Signature:", 1)[1])).group(1).lower()
    assert b"list-unsubscribe" in signed.split(b":") and b"list-unsubscribe-post" in signed.split(b":")


class RawRecorder:
    def __init__(self):
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.original_content)
        return "250 OK"


def test_smtp_message_verifies_as_received(signing, settings):
    recorder = RawRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        message_for_first_subscriber().send()
    finally:
        controller.stop()
    assert dkim.verify(recorder.raw[0], dnsfunc=signing)


def test_a_changed_unsubscribe_header_breaks_the_signature(signing, outbox):
    message_for_first_subscriber().send()
    raw = next(outbox.glob("*.eml")).read_bytes()
    tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                           b"List-Unsubscribe-Post: List-Unsubscribe=Nope")
    assert tampered != raw
    assert not dkim.verify(tampered, dnsfunc=signing)


def test_no_key_configured_means_no_signature(outbox):
    message_for_first_subscriber().send()
    assert b"DKIM-Signature" not in next(outbox.glob("*.eml")).read_bytes()


def test_half_a_dkim_configuration_is_an_error(settings):
    settings.NEWSDIGEST_DKIM_SELECTOR = "nd2026"
    with pytest.raises(ImproperlyConfigured, match="NEWSDIGEST_DKIM_DOMAIN"):
        message_for_first_subscriber().message()


def test_inline_private_key_with_escaped_newlines_signs(settings, dkim_key, signing, outbox):
    key_file, _ = dkim_key
    settings.NEWSDIGEST_DKIM_KEY_FILE = ""
    settings.NEWSDIGEST_DKIM_PRIVATE_KEY = key_file.read_text().replace("\n", "\\n")
    message_for_first_subscriber().send()
    assert dkim.verify(next(outbox.glob("*.eml")).read_bytes(), dnsfunc=signing)
