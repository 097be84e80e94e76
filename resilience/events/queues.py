"""The two background threads: one stores events, one dispatches their alerts."""

from __future__ import annotations

import atexit
import time
from collections import defaultdict

from django.db import connections

from resilience import delivery
from resilience.events.store import Item, store_and_notify
from resilience.sanitize import describe_error
from resilience.writer import BackgroundQueue


def flush(timeout: float = 5.0) -> bool:
    """Wait until this process has stored every event and queued every alert; False on timeout."""
    deadline = time.monotonic() + timeout
    return writer.flush(timeout) and dispatcher.flush(max(0.0, deadline - time.monotonic()))


def discard(timeout: float = 10.0) -> None:
    """Drop whatever this process has not written or dispatched yet (tests; the sweeper
    recovers it), waiting at most ``timeout`` seconds per thread for a batch in hand to end."""
    writer.discard(timeout)  # first: a batch it finishes may still hand alerts to the dispatcher
    dispatcher.discard(timeout)


def close_connections() -> None:
    # Connections are per thread: this closes only the calling background thread's own, so no
    # idle connection lingers (and a broken one is replaced on the next batch).
    connections.close_all()


def write(items: list[Item]) -> list[Item]:
    by_circuit: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_circuit[item.transition.circuit].append(item)
    failed: list[Item] = []
    for circuit, group in by_circuit.items():
        try:
            store_and_notify(circuit, group, dispatcher.put)
        except Exception as exc:  # database down: the transitions also wait in the outbox
            failed.extend(group)
            writer.warn(
                "resilience: cannot store %d event(s) of %s yet, retrying: %s",
                len(group),
                circuit,
                describe_error(exc),
            )
            close_connections()
    return failed


def dispatch(event_ids: list[int]) -> list[int]:
    return [event_id for event_id in event_ids if not dispatch_now(event_id)]


def dispatch_now(event_id: int) -> bool:
    try:
        return delivery.dispatch(event_id)
    except Exception as exc:  # broker down, or database trouble while sending: try again later
        dispatcher.warn(
            "resilience: cannot dispatch the alert of event %s yet: %s",
            event_id,
            describe_error(exc),
        )
        return False


writer = BackgroundQueue("events", write, on_idle=close_connections)
# Separate thread: a hung broker or SMTP server delays alerts, never the recording of events.
dispatcher = BackgroundQueue("alerts", dispatch, on_idle=close_connections)


@atexit.register
def _flush_at_exit() -> None:
    flush(timeout=2.0)
