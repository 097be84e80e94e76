"""The real circuit's timeline: its recorded changes as spans of closed, open, quiet, half-open
and forced time over the replayed period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from resilience import engine
from resilience.engine_types import CLOSED, HALF_OPEN, OPEN, Policy
from resilience.replay.types import FORCED_SPAN, QUIET, Change, Span


@dataclass(slots=True)
class _Real:
    """The real circuit while its changes are read in order."""

    state: str = CLOSED
    forced: bool = False
    trial: bool = False  # half-open since a change inside the period: its trial is ours
    trips: int = 0
    since: int = 0  # when the current state began
    opened_at: int = 0
    open_ms: int = 0  # time not closed inside the period


def timeline(
    changes: Sequence[Change], start: int, end: int, policy: Policy
) -> tuple[list[Span], int]:
    """The real circuit's spans over ``[start, end)`` and its time not closed (ms).

    An open span lasts until the trial time ``policy`` gives it (the rest, until the
    ``half_opened`` change, is ``quiet``: a trial starts with the first call after that time).
    """
    real = _Real(since=start)
    spans: list[Span] = []
    for change in changes:
        if change.at_ms >= end:
            break
        at = max(change.at_ms, start)
        if change.at_ms >= start:
            _emit(spans, real, at, change.kind, policy)
        _apply(real, change, at)
    _emit(spans, real, end, "", policy)
    return spans, real.open_ms


def _apply(real: _Real, change: Change, at: int) -> None:
    kind = change.kind
    if kind in ("forced_open", "released"):
        real.forced = kind == "forced_open"
        real.since = at
        return
    if kind == "opened":
        real.trips = real.trips + 1 if change.from_state == HALF_OPEN else 1
        real.opened_at = change.at_ms
    state = {"opened": OPEN, "half_opened": HALF_OPEN}.get(kind, CLOSED)
    if kind in ("closed", "reset"):
        real.trips = 0
    real.state, real.since, real.trial = state, at, kind == "half_opened"


def _emit(spans: list[Span], real: _Real, at: int, ends: str, policy: Policy) -> None:
    """The span(s) from ``real.since`` to ``at``, ended by a change of kind ``ends``."""
    since = real.since
    if real.state != CLOSED:
        real.open_ms += at - since
    if real.forced:
        spans.append(Span(since, at, FORCED_SPAN, ends=ends))
    elif real.state == OPEN:
        until = real.opened_at + engine.open_duration_ms(policy, max(1, real.trips))
        cut = min(max(until, since), at)
        spans.append(Span(since, cut, OPEN, ends="" if cut < at else ends))
        if cut < at:
            spans.append(Span(cut, at, QUIET, ends=ends))
    elif real.state == HALF_OPEN:
        spans.append(Span(since, at, HALF_OPEN, trial=real.trial, ends=ends))
    elif at > since:
        spans.append(Span(since, at, CLOSED, ends=ends))
    real.since, real.trial = at, False
