"""Per-process call counters, cheap enough for the call path (read by the metrics endpoint and
sent, as deltas, to the backend's outcome history: resilience.backends.history)."""

from __future__ import annotations

import bisect
import os
import threading

from resilience import series

# "rejected": refused by an open circuit; "bulkhead_rejected": refused by a full bulkhead;
# "over_cap": monitor-mode calls the bulkhead would have refused; "overdue": calls judged a
# failure while still running (also counted in "failure").
OUTCOMES = ("success", "failure", "rejected", "ignored", "bulkhead_rejected", "over_cap", "overdue")
SUCCESS, FAILURE, REJECTED, IGNORED, BULKHEAD_REJECTED, OVER_CAP, OVERDUE = range(len(OUTCOMES))
# After the outcomes, only for timed calls (see timed()): calls slower than slow_call_ms, the
# sum of durations (ms) and one counter per latency bin (series.BOUNDS_MS).
SLOW = len(OUTCOMES)
LATENCY_SUM = SLOW + 1
LATENCY_BINS = LATENCY_SUM + 1
_SIZE = LATENCY_BINS + len(series.BOUNDS_MS) + 1
_BOUNDS = series.BOUNDS_MS
_bisect = bisect.bisect_left

# An untracked call is timed 1 in this many (Breaker._enter); its lock-free lane is never
# timed (docs/history.md, "Accuracy"). Tracked calls are always timed.
SAMPLE_EVERY = 8

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
            found = _counters.setdefault(circuit, [0] * _SIZE)
    return found


def incr(circuit: str, outcome: int) -> None:
    counters(circuit)[outcome] += 1


def timed(counts: list[int], duration_ms: int, slow: bool) -> None:
    """Count the duration of one timed call (success or failure) in ``counts``; ``slow``: it
    ran longer than its policy's ``slow_call_ms``."""
    if slow:
        counts[SLOW] += 1
    counts[LATENCY_SUM] += duration_ms
    counts[LATENCY_BINS + _bisect(_BOUNDS, duration_ms)] += 1  # series.latency_bin, inlined


def snapshot() -> dict[str, dict[str, int]]:
    """``{circuit: {outcome: count}}`` for every circuit used in this process."""
    with _lock:
        items = list(_counters.items())
    return {name: dict(zip(OUTCOMES, values, strict=False)) for name, values in items}


def copy() -> dict[str, list[int]]:
    """Every circuit's counters as they are now (copies, for ``delta``)."""
    with _lock:
        items = list(_counters.items())
    return {name: values.copy() for name, values in items}


def delta(now: list[int], before: list[int] | None) -> list[int] | None:
    """The history vector (``series``) of what was counted between two ``copy()`` lists of a
    circuit; None when nothing was."""
    if before is None:
        before = [0] * _SIZE
    if now == before:
        return None
    d = [n - b for n, b in zip(now, before, strict=True)]
    vector = [0] * series.SIZE
    vector[series.CALLS] = d[SUCCESS] + d[FAILURE]
    vector[series.FAILURES] = d[FAILURE]
    vector[series.SLOW] = d[SLOW]
    vector[series.REJECTED_OPEN] = d[REJECTED]
    vector[series.REJECTED_BULKHEAD] = d[BULKHEAD_REJECTED]
    vector[series.TIMEOUTS] = d[OVERDUE]
    vector[series.LATENCY_SUM :] = d[LATENCY_SUM:]
    return vector if any(vector) else None


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)
