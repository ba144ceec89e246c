"""Deliver stage: one Delivery row per (digest, subscriber); rows are claimed, sent, finalised.

The database decides who sends what; the broker only nudges. Tasks carry row ids:
- fanout: approved -> sending, the queued rows, their nudges; pause, resume, cancel;
- claims: a claim gives each row to one worker under a lease (claiming a delivery);
- sending: messages (DKIM-signed by dkim), the SMTP conversation, one batch;
- sweeper: puts back rows whose worker died, re-nudges rows whose Celery message was lost; the report.

This module names the stage's public API; callers use `deliver.<name>`.
"""

from .claims import claim, eligible_subscribers
from .fanout import (
    PUBLISH_ERRORS,
    SendRefused,
    begin_send,
    cancel,
    fan_out,
    forget_nudge,
    nudge,
    pause,
    publish_batches,
    resume,
    start_or_stay_approved,
)
from .sending import (
    BatchResult,
    DeliveryTransientError,
    build_message,
    close_connection,
    message_bytes,
    message_id,
    send_batch,
    send_test,
    throttle,
)
from .sweeper import progress, report, sweep, sweep_and_publish

__all__ = [
    "PUBLISH_ERRORS", "BatchResult", "DeliveryTransientError", "SendRefused", "begin_send", "build_message",
    "cancel", "claim", "close_connection", "eligible_subscribers", "fan_out", "forget_nudge", "message_bytes",
    "message_id", "nudge", "pause", "progress", "publish_batches", "report", "resume", "send_batch", "send_test",
    "start_or_stay_approved", "sweep", "sweep_and_publish", "throttle",
]
