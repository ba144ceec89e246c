"""A small OpenAI-compatible chat completions server for tests and benchmarks (real HTTP).

Scripted per test: a queue of replies (served first, in order), then a callable that builds a
reply from the request body. Every request body is recorded. Replies cover what real servers
do: answers, errors with headers (429 + Retry-After), slowness, dropped connections.
"""

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers.processes import free_port


@dataclass
class Reply:
    status: int = 200
    body: dict | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (past the client's timeout = a timeout)
    drop: bool = False  # close the socket without any response


def completion(content: str, *, finish_reason: str = "stop", refusal: str | None = None,
               usage: tuple[int, int] = (100, 50), model: str = "fake-model") -> Reply:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return Reply(body={
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    })


def answer(summary: dict, **kwargs) -> Reply:
    return completion(json.dumps(summary), **kwargs)


def refusal(text: str = "I can't help with that.") -> Reply:
    return completion("", refusal=text)


def error(status: int, message: str, headers: dict[str, str] | None = None, param: str | None = None) -> Reply:
    return Reply(status=status, headers=headers or {},
                 body={"error": {"message": message, "type": "invalid_request_error", "param": param,
                                 "code": None}})


def json_schema_unsupported() -> Reply:
    """What e.g. an older llama.cpp or vLLM build answers to response_format json_schema."""
    return error(400, "response_format type 'json_schema' is not supported", param="response_format")


def rate_limited(retry_after: float) -> Reply:
    return error(429, "Rate limit reached", {"Retry-After": f"{retry_after:g}"})


def dropped() -> Reply:
    return Reply(drop=True)


class FakeOpenAI:
    def __init__(self):
        self.requests: list[dict] = []
        # clock() at each request's arrival; monotonic so a clock step cannot reorder them, and
        # replaceable so a test can read a simulated clock that the client's sleeps advance.
        self.clock: Callable[[], float] = time.monotonic
        self.times: list[float] = []
        self.queue: deque[Reply] = deque()
        self.handler: Callable[[dict], Reply] | None = None
        self.latency = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
            # would add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                reply = server._next(self.path, body)
                time.sleep(server.latency + reply.delay)
                if reply.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        # serve_forever checks for shutdown() once per poll interval; the default 0.5 s is paid on
        # every test's teardown.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    def _next(self, path: str, body: dict) -> Reply:
        with self.lock:
            self.requests.append(body)
            self.times.append(self.clock())
            if path.rstrip("/") != "/v1/chat/completions":
                return error(404, f"no route {path}")
            if self.queue:
                return self.queue.popleft()
        if self.handler is not None:
            return self.handler(body)
        return error(500, "the fake server has no scripted reply left")

    def start(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def article_in_request(body: dict) -> str:
    """The fenced article text the client sent (the last user message, between the tags)."""
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][0]
    return user.split("<article>\n", 1)[1].rsplit("\n</article>", 1)[0]


# --------------------------------------------------------------------------- a story and its answer

ARTICLE_TITLE = "Resistance front claims gains in Panjshir"
ARTICLE = """Ahmad Massoud, the leader of the National Resistance Front, said on Monday that his fighters had \
retaken two districts in the Panjshir valley. His father, Ahmad Shah Massoud, led the resistance against \
the Taliban until he was killed in 2001.

The Taliban denied the claim. Zabihullah Mujahid, a Taliban spokesman, told Reuters that the fighting had \
ended weeks ago.

The United Nations called for talks between the two sides. Officials in Kabul declined to comment.
"""


def actor(name: str, kind: str, evidence: str, role: str = "participant", action: str = "acted") -> dict:
    return {"name": name, "kind": kind, "role": role, "action": action, "evidence": evidence}


def canned_summary(**changes) -> dict:
    """A faithful answer about ARTICLE; `changes` replace top-level fields."""
    summary = {
        "headline": "Resistance front says it retook two Panjshir districts; Taliban deny it",
        "summary": "Ahmad Massoud said his fighters retook two districts in the Panjshir valley. "
                   "The Taliban denied the claim. The United Nations called for talks.",
        "why_it_matters": "Renewed fighting would deepen the conflict over the valley.",
        "key_actors": [
            actor("Ahmad Massoud", "person", "Ahmad Massoud, the leader of the National Resistance Front, said on "
                  "Monday that his fighters had retaken two districts in the Panjshir valley."),
            actor("Ahmad Shah Massoud", "person", "His father, Ahmad Shah Massoud, led the resistance against "
                  "the Taliban until he was killed in 2001."),
            actor("Taliban", "group", "The Taliban denied the claim."),
            actor("Zabihullah Mujahid", "person", "Zabihullah Mujahid, a Taliban spokesman, told Reuters that "
                  "the fighting had ended weeks ago."),
            actor("United Nations", "organisation", "The United Nations called for talks between the two sides."),
        ],
        "topics": ["Afghanistan", "conflict"],
        "flags": [],
    }
    summary.update(changes)
    return summary
