"""Transitions and manual actions become ``CircuitEvent`` rows exactly once, off the hot path:
recorded (record), stored with their alerts planned (store), by background threads (queues),
swept from the outboxes later (drain), each logged once (log)."""

from resilience.events.drain import HTTP_PREFIX, OUTBOX_BATCH, drain
from resilience.events.queues import discard, flush
from resilience.events.record import REASON_MAX, emit, record_action
from resilience.events.store import SIGNALS

__all__ = [
    "HTTP_PREFIX",
    "OUTBOX_BATCH",
    "REASON_MAX",
    "SIGNALS",
    "discard",
    "drain",
    "emit",
    "flush",
    "record_action",
]
