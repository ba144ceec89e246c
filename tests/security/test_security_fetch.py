"""Issue 13.4 and 12: a fetch cannot be stalled past its deadline, nor pointed at private addresses."""

import ipaddress
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from worker.ingest import fetch

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n"


@contextmanager
def trickling_server(payload: bytes, every: float = 0.05):
    """A real TCP server that sends `payload` one byte every `every` seconds; yields (url, state) where
    state["finished"] says whether it got to send every byte before the client hung up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    state = {"finished": False, "sent": 0}

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                for byte in payload:
                    conn.sendall(bytes([byte]))
                    state["sent"] += 1
                    time.sleep(every)
                state["finished"] = True
            except OSError:
                pass  # the client hung up: what the deadline is for

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed", state
    finally:
        thread.join(timeout=30)
        listener.close()


@pytest.fixture
def short_deadline(settings):
    settings.NEWSDIGEST_FETCH_ALLOW = ["127.0.0.1"]
    settings.NEWSDIGEST_FETCH_TIMEOUT = 1.0


def test_a_server_trickling_the_body_byte_by_byte_is_cut_off_at_the_deadline(short_deadline):
    # 200 bytes at 20 per second would take 10 s; per-read timeouts (1 s) never fire.
    with trickling_server(HEADERS + b"x" * 200) as (url, state):
        with pytest.raises(fetch.FetchError, match="timed out"):
            fetch.fetch(url)
    assert not state["finished"]


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline(short_deadline):
    with trickling_server(HEADERS.replace(b"\r\n\r\n", b"\r\nX-Slow: " + b"y" * 200 + b"\r\n\r\n")) as (url, state):
        with pytest.raises(fetch.FetchError, match="timed out"):
            fetch.fetch(url)
    assert not state["finished"]


def test_a_prompt_server_is_fetched_whole(short_deadline):
    with trickling_server(HEADERS + b"z" * 200, every=0) as (url, state):
        assert fetch.fetch(url).body == b"z" * 200
    assert state["finished"]


# --- SSRF: IPv6 forms that embed a private IPv4 address ---------------------------------------------

@pytest.mark.parametrize("address", [
    "64:ff9b::a00:1",        # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",       # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",    # NAT64 of the metadata address 169.254.169.254
    "2002:a00:1::1",         # 6to4 of 10.0.0.1
    "2002:7f00:1::",         # 6to4 of 127.0.0.1
    "::10.0.0.1",            # IPv4-compatible
    "::127.0.0.1",
    "::ffff:192.168.1.1",    # IPv4-mapped
    "64:ff9b:1::a00:1",      # local-use NAT64 prefix (RFC 8215)
])
def test_the_ssrf_guard_refuses_ipv6_forms_embedding_a_private_ipv4(address):
    assert not fetch._is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"])
def test_the_ssrf_guard_lets_public_ipv6_through(address):
    assert fetch._is_public(ipaddress.ip_address(address))


def test_a_url_with_an_ipv6_literal_embedding_loopback_is_refused(settings):
    settings.NEWSDIGEST_FETCH_ALLOW = []
    with pytest.raises(fetch.FetchError, match="not public"):
        fetch.fetch("http://[64:ff9b::7f00:1]/feed")
