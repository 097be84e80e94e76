"""The pieces a replay works with: a real ``Change``, a ``Span`` of the real circuit's timeline,
a ``Run`` of calls and its outcome code, and the ``Outcome`` of a replayed period."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from resilience.engine_types import OPEN


class ReplayTooLarge(Exception):
    """A replay that would take more than its ``max_steps`` engine steps (``replay``)."""


# The outcome of a run of calls: known (the call was admitted and recorded), estimated (the
# real circuit refused it, so its outcome is a guess), refused by a kill switch (never run in
# a replay: operators would have pulled it the same way), or not estimated yet.
OK, FAILED, GUESS_OK, GUESS_FAILED, FORCED, UNKNOWN = range(6)
FAILURES = frozenset({FAILED, GUESS_FAILED})
GUESSES = frozenset({GUESS_OK, GUESS_FAILED})
# Spans of the real circuit's timeline: besides the engine's states, ``quiet`` is the rest of
# an open period once its trial time has passed (no call came until the trial), ``forced`` a
# kill switch or forced-open maintenance window in force.
QUIET, FORCED_SPAN = "quiet", "forced"
REFUSING = (OPEN, FORCED_SPAN)


@dataclass(frozen=True, slots=True)
class Change:
    """One real state change or kill-switch action of the circuit (from a ``CircuitEvent``).

    ``kind``: ``opened`` | ``half_opened`` | ``closed`` | ``reset`` (the state) or
    ``forced_open`` | ``released`` (a kill switch); ``from_state`` tells a re-trip
    (``half_open``) from a first trip.
    """

    at_ms: int
    kind: str
    from_state: str = ""


@dataclass(frozen=True, slots=True)
class Span:
    """``[start, end)`` ms of the real circuit in one condition; ``trial``: a half-open span
    that begins here (its first call is the trial call); ``ends``: the change that ends it."""

    start: int
    end: int
    kind: str
    trial: bool = False
    ends: str = ""


@dataclass(frozen=True, slots=True)
class Run:
    """``count`` calls at ``start + i * step`` ms (``i < count``), all of outcome ``code``."""

    start: float
    step: float
    count: int
    code: int

    def at(self, i: int) -> int:
        return int(self.start + i * self.step)

    def index_at(self, i: int, ms: int) -> int:
        """The first index ``>= i`` whose call is at or after ``ms`` (``count``: none)."""
        if self.step <= 0:
            return i if self.at(i) >= ms else self.count
        j = min(self.count, max(i, math.ceil((ms - self.start) / self.step)))
        while j > i and self.at(j - 1) >= ms:  # float rounding either way
            j -= 1
        while j < self.count and self.at(j) < ms:
            j += 1
        return j


@dataclass(slots=True)
class Outcome:
    """What a circuit did (or would have done) over the replayed period."""

    opened: int = 0
    open_ms: int = 0
    rejected: int = 0
    calls: int = 0
    failures: int = 0
    estimated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "open_seconds": round(self.open_ms / 1000, 3),
            "rejected": self.rejected,
            "calls": self.calls,
            "failures": self.failures,
            "estimated": self.estimated,
        }
