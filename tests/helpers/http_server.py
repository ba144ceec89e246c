"""A real HTTP server in a thread, serving canned routes (feeds, pages) to the fetch code."""

import threading
from contextlib import contextmanager

from tests.helpers.processes import free_port


@contextmanager
def http_server(routes: dict):
    """A real HTTP server on 127.0.0.1:free port in a thread; yields (base_url, requests seen).

    routes: path -> (status, headers, body), or a callable taking the request handler and
    returning that triple; a path with a query falls back to its route without the query.
    Unknown paths answer 404. Each request is recorded as (path, headers dict)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            seen.append((self.path, dict(self.headers)))
            route = routes.get(self.path) or routes.get(self.path.split("?")[0]) or (
                404, {"Content-Type": "text/plain"}, b"not found")
            status, headers, body = route(self) if callable(route) else route
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up first, as the fetch-deadline and size-limit tests make it do

        def log_message(self, *args):
            pass  # no per-request lines on stderr in the test output

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
