"""Embedded-default email backend: one .eml file per message under the outbox folder."""

import re
import threading
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


class OutboxBackend(BaseEmailBackend):
    """Writes each message as `<message-id>.eml`, so a re-send of the same delivery overwrites
    its own file instead of adding a second copy, exactly as a mail server would dedupe by id."""

    _lock = threading.Lock()

    def __init__(self, outbox_dir: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self.outbox = Path(outbox_dir or settings.OUTBOX_DIR)

    def send_messages(self, email_messages) -> int:
        self.outbox.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            mime = message.message()
            stem = _UNSAFE.sub("_", mime["Message-ID"].strip("<>")) if mime["Message-ID"] else None
            with self._lock:
                if stem is None:
                    stem = f"message-{len(list(self.outbox.glob('*.eml'))) + 1}"
                tmp = self.outbox / f".{stem}.tmp"
                tmp.write_bytes(mime.as_bytes(linesep="\r\n"))
                tmp.replace(self.outbox / f"{stem}.eml")
            sent += 1
        return sent
