"""A standalone SMTP sink for the crash test and the fan-out benchmark.

    python tests/helpers/smtp_sink.py --port PORT --record FILE [--tempfail 0.05] [--drop 0.02] [--seed 1]
                                      [--pipelining]

Appends one line per accepted message to FILE: "<Message-ID>\\t<recipient>". With
--tempfail a share of messages is answered 451 after DATA; with --drop a share of
transactions has its connection cut at MAIL FROM, without a reply; with --pipelining the
EHLO reply offers PIPELINING (RFC 2920), as Postfix does. Prints "ready" once listening.
"""

import argparse
import random
import re
import signal
import sys
import threading

from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def ehlo(session, hostname: str, responses: list[str], pipelining: bool) -> list[str]:
    """aiosmtpd's EHLO reply, with PIPELINING offered when asked: aiosmtpd reads pipelined commands in
    order from its stream, it just does not say so by default."""
    session.host_name = hostname
    return [*responses[:-1], "250-PIPELINING", responses[-1]] if pipelining else responses


class SinkHandler:
    def __init__(self, record, tempfail: float, drop: float, seed: int, pipelining: bool):
        self.record = record
        self.tempfail = tempfail
        self.drop = drop
        self.random = random.Random(seed)
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        return ehlo(session, hostname, responses, self.pipelining)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.drop and self.random.random() < self.drop:
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.tempfail and self.random.random() < self.tempfail:
            return "451 4.3.0 try again later"
        header = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        found = MESSAGE_ID.search(header)
        mid = found.group(1).decode() if found else "-"
        for rcpt in envelope.rcpt_tos:
            self.record.write(f"{mid}\t{rcpt}\n")
        self.record.flush()
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--tempfail", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pipelining", action="store_true")
    args = parser.parse_args()
    with open(args.record, "a", encoding="utf-8") as record:
        handler = SinkHandler(record, args.tempfail, args.drop, args.seed, args.pipelining)
        controller = Controller(handler, hostname="127.0.0.1", port=args.port, data_size_limit=10 * 1024 * 1024)
        controller.start()
        print("ready", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
