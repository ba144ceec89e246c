"""Safe HTTP fetching: the one place Newsdigest reaches out to URLs supplied by users and feeds.

Feed and article URLs come from outside, so a fetch must not become a way into the
private network (SSRF). Every hop of a redirect chain is resolved and checked, and the
connection goes to the very IP that was checked, so a second DNS answer cannot swap in
an internal address (DNS rebinding). Size, time and redirect count are all capped.
"""

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

from ..redact import redact_text

USER_AGENT = "Newsdigest/0.1 (+https://github.com/newsdigest)"
MAX_REDIRECTS = 5
REDIRECT_CODES = {301, 302, 303, 307, 308}
# Cloud metadata endpoints; most are link-local already, named here so the intent is explicit.
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class FetchError(Exception):
    """The URL could not be fetched; `status` is the HTTP status when the server answered."""

    def __init__(self, message: str, status: int | None = None):
        # The message is stored (rejections, Source.last_error) and logged: no feed password in it.
        super().__init__(redact_text(message))
        self.status = status


@dataclass
class FetchResult:
    url: str
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


def _allow_rules() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts, networks = set(), []
    for item in settings.NEWSDIGEST_FETCH_ALLOW:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return hosts, networks


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it through a translator.
NAT64_NETWORKS = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    6to4 (2002:AABB:CCDD::/48) or NAT64 (64:ff9b::a.b.c.d); None for a native IPv6 address."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if any(ip in net for net in NAT64_NETWORKS) or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        # A translator (or the kernel, for mapped/compatible forms) connects to the embedded address.
        return _is_public(embedded)
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def resolve_checked(host: str, port: int) -> str:
    """The first address of `host` that the SSRF guard lets through, else FetchError."""
    allowed_hosts, allowed_networks = _allow_rules()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from exc
    refused = []
    for info in infos:
        address = info[4][0]
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if host.lower() in allowed_hosts or any(ip in net for net in allowed_networks) or _is_public(ip):
            return address
        refused.append(address)
    raise FetchError(f"refused to fetch {host}: address {', '.join(refused)} is not public "
                     "(private, loopback, link-local, multicast, reserved or metadata); "
                     "allow it with NEWSDIGEST_FETCH_ALLOW")


class _Deadline:
    """One wall-clock deadline for a request, enforced at its socket.

    Per-read timeouts do not bound a fetch: a server trickling one byte a second never lets a read
    time out. So once the TCP connection exists, a timer shuts the socket down when the deadline
    passes, which ends whatever read is blocked (TLS handshake, status line, headers or body).
    """

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self._timer: threading.Timer | None = None

    def arm(self, sock: socket.socket) -> None:
        def expire() -> None:
            self.expired = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing left to stop

        self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _pool(scheme: str, host: str, ip: str, port: int, timeout: float,
          watchdog: _Deadline) -> urllib3.HTTPConnectionPool:
    pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "https":
        # Connect to the checked IP but verify the certificate (and send SNI) for the host name.
        pool = urllib3.HTTPSConnectionPool(ip, port, timeout=pool_timeout, retries=False, assert_hostname=host,
                                           server_hostname=host, cert_reqs="CERT_REQUIRED")
    else:
        pool = urllib3.HTTPConnectionPool(ip, port, timeout=pool_timeout, retries=False)

    class DeadlineConnection(pool.ConnectionCls):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()  # TCP connected (bounded by the connect timeout); TLS comes after
            watchdog.arm(sock)
            return sock

    pool.ConnectionCls = DeadlineConnection
    return pool


def _one_request(url: str, headers: dict[str, str], deadline: float) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise FetchError(f"only http and https URLs are fetched, not {scheme or 'a relative URL'}: {url}")
    if not parts.hostname:
        raise FetchError(f"URL has no host: {url}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number, e.g. in a redirect's Location
        raise FetchError(f"bad port in URL {url}: {exc}") from exc
    ip = resolve_checked(parts.hostname, port)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    limit = settings.NEWSDIGEST_FETCH_MAX_BYTES
    timeout = max(0.1, min(settings.NEWSDIGEST_FETCH_TIMEOUT, deadline - time.monotonic()))
    watchdog = _Deadline(deadline)
    pool = _pool(scheme, parts.hostname, ip, port, timeout, watchdog)
    timed_out = f"{url}: timed out after {settings.NEWSDIGEST_FETCH_TIMEOUT}s"
    try:
        response = pool.urlopen("GET", path, headers={**headers, "Host": host_header}, redirect=False,
                                preload_content=False, decode_content=True)
        try:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"{url}: response of {declared} bytes is over the {limit}-byte limit")
            chunks, size = [], 0
            for chunk in response.stream(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"{url}: response is over the {limit}-byte limit")
                chunks.append(chunk)
            if watchdog.expired:  # the shutdown can look like a clean end of the body
                raise FetchError(timed_out)
            return response.status, {k.lower(): v for k, v in response.headers.items()}, b"".join(chunks)
        finally:
            response.release_conn()
    except urllib3.exceptions.TimeoutError as exc:
        raise FetchError(timed_out) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if watchdog.expired:
            raise FetchError(timed_out) from exc
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        watchdog.cancel()
        pool.close()


def fetch(url: str, *, etag: str = "", last_modified: str = "", accept: str = "*/*") -> FetchResult:
    """GET `url`, following at most MAX_REDIRECTS checked redirects; 304 comes back as a result,
    other non-2xx statuses raise FetchError with the status."""
    headers = {"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + settings.NEWSDIGEST_FETCH_TIMEOUT
    seen = [url]
    for _ in range(MAX_REDIRECTS + 1):
        status, response_headers, body = _one_request(url, headers, deadline)
        if status in REDIRECT_CODES:
            location = response_headers.get("location")
            if not location:
                raise FetchError(f"{url}: redirect {status} without a Location header", status)
            url = urljoin(url, location)
            if url in seen:
                raise FetchError(f"redirect loop: {' -> '.join([*seen, url])}", status)
            seen.append(url)
            continue
        if status == 304 or 200 <= status < 300:
            return FetchResult(url=url, status=status, body=body, headers=response_headers)
        raise FetchError(f"{url}: HTTP {status}", status)
    raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}) starting at {seen[0]}")
