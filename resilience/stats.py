"""Per-process call counters, cheap enough for the call path (read by the metrics endpoint)."""

from __future__ import annotations

import threading

# "rejected": refused by an open circuit; "bulkhead_rejected": refused by a full bulkhead;
# "over_cap": monitor-mode calls the bulkhead would have refused; "overdue": calls judged a
# failure while still running (also counted in "failure").
OUTCOMES = ("success", "failure", "rejected", "ignored", "bulkhead_rejected", "over_cap", "overdue")
SUCCESS, FAILURE, REJECTED, IGNORED, BULKHEAD_REJECTED, OVER_CAP, OVERDUE = range(len(OUTCOMES))

_lock = threading.Lock()
_counters: dict[str, list[int]] = {}


def counters(circuit: str) -> list[int]:
    """The shared counter list of ``circuit`` (index with SUCCESS, FAILURE, ...).

    Breakers keep a reference and increment in place: a list item ``+=`` costs a few tens of
    nanoseconds. Under free-threading a rare increment could be lost; these are metrics, not
    state (circuit state lives in the backend).
    """
    found = _counters.get(circuit)
    if found is None:
        with _lock:
            found = _counters.setdefault(circuit, [0] * len(OUTCOMES))
    return found


def incr(circuit: str, outcome: int) -> None:
    counters(circuit)[outcome] += 1


def snapshot() -> dict[str, dict[str, int]]:
    """``{circuit: {outcome: count}}`` for every circuit used in this process."""
    with _lock:
        items = list(_counters.items())
    return {name: dict(zip(OUTCOMES, values, strict=True)) for name, values in items}
