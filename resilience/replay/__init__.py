"""What-if replay: a circuit's recorded outcome history run again through the state machine.

In steps, one module each: the real circuit's ``timeline`` from its changes; the ``layout`` of
the recorded counts along it (with outcomes ``estimate``d for refused calls); ``simulate``:
the runs played through the engine under a policy. ``types``: what they pass on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resilience.engine_types import Policy
from resilience.replay.layout import bucket_count, bucket_ms, layout
from resilience.replay.simulate import simulate
from resilience.replay.timeline import timeline
from resilience.replay.types import (
    FAILED,
    FORCED,
    GUESS_FAILED,
    GUESS_OK,
    OK,
    Change,
    Outcome,
    ReplayTooLarge,
    Run,
)

__all__ = [
    "FAILED",
    "FORCED",
    "GUESS_FAILED",
    "GUESS_OK",
    "OK",
    "REPLAYED_FIELDS",
    "Change",
    "Outcome",
    "ReplayTooLarge",
    "Run",
    "layout",
    "replay",
    "simulate",
    "timeline",
]

# The policy fields a replay plays out. Not the others: durations are not in the history
# (slow_call_ms, call_timeout_ms), nor concurrency (max_concurrent_calls, and with calls taken
# as instantaneous half_open_max_calls changes nothing), nor exceptions or retries (the
# history holds outcomes as they were counted); alerts never change what a circuit does.
REPLAYED_FIELDS = (
    "mode",
    "failure_threshold",
    "failure_rate_threshold",
    "window_seconds",
    "minimum_calls",
    "recovery_timeout",
    "backoff_multiplier",
    "max_recovery_timeout",
    "success_threshold",
)


def replay(
    buckets: Sequence[dict[str, Any]],
    changes: Sequence[Change],
    current: Policy,
    proposed: Policy,
    max_steps: int | None = None,
) -> dict[str, dict[str, Any]]:
    """``{"actual": ..., "proposed": ...}`` for ``buckets`` (oldest first, the history's shape).

    ``changes``: the real circuit's transitions and kill-switch actions, in time order, with
    the last ones before the first bucket (they give its state at the start). ``current``:
    the policy the history was recorded under (it tells how long the real circuit stayed
    open); ``actual["replayed"]`` is ``current`` replayed the same way as ``proposed``, a
    measure of how far the replay is from what happened. See docs/replay.md. ``max_steps``:
    ``ReplayTooLarge`` rather than more runs of calls laid out, or more calls one by one
    through the engine (each policy's): both grow with the failures among many calls.
    """
    if not buckets:
        empty = Outcome().as_dict()
        return {"actual": {**empty, "rejected_bulkhead": 0, "replayed": empty}, "proposed": empty}
    start, end = _period(buckets)
    spans, open_ms = timeline(changes, start, end, current)
    runs = layout(buckets, spans, current, max_steps)
    actual = {
        "opened": sum(1 for c in changes if c.kind == "opened" and start <= c.at_ms < end),
        "open_seconds": round(open_ms / 1000, 3),
        "rejected": sum(bucket_count(b, "rejected_open", "rejected") for b in buckets),
        "rejected_bulkhead": sum(bucket_count(b, "rejected_bulkhead") for b in buckets),
        "calls": sum(bucket_count(b, "calls") for b in buckets),
        "failures": sum(bucket_count(b, "failures") for b in buckets),
        "replayed": simulate(runs, current, start, end, max_steps).as_dict(),
    }
    return {
        "actual": actual,
        "proposed": simulate(runs, proposed, start, end, max_steps).as_dict(),
    }


def _period(buckets: Sequence[dict[str, Any]]) -> tuple[int, int]:
    last = buckets[-1]
    return bucket_ms(buckets[0]), bucket_ms(last) + int(last["seconds"]) * 1000
