"""What-if replay: a circuit's recorded outcome history run again through the state machine."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from resilience import engine
from resilience.engine_types import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    MONITOR,
    OPEN,
    CircuitState,
    Policy,
    Transition,
)

# The outcome of a run of calls: known (the call was admitted and recorded), estimated (the
# real circuit refused it, so its outcome is a guess), refused by a kill switch (never run in
# a replay: operators would have pulled it the same way), or not estimated yet.
OK, FAILED, GUESS_OK, GUESS_FAILED, FORCED, UNKNOWN = range(6)
FAILURES = frozenset({FAILED, GUESS_FAILED})
GUESSES = frozenset({GUESS_OK, GUESS_FAILED})
# How many admitted calls on each side of a refused stretch estimate its failure rate.
NEIGHBOURS = 5
# Spans of the real circuit's timeline: besides the engine's states, ``quiet`` is the rest of
# an open period once its trial time has passed (no call came until the trial), ``forced`` a
# kill switch or forced-open maintenance window in force.
QUIET, FORCED_SPAN = "quiet", "forced"
REFUSING = (OPEN, FORCED_SPAN)
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


class ReplayTooLarge(Exception):
    """A replay that would take more than its ``max_steps`` engine steps (``replay``)."""


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
        "rejected": sum(_count(b, "rejected_open", "rejected") for b in buckets),
        "rejected_bulkhead": sum(_count(b, "rejected_bulkhead") for b in buckets),
        "calls": sum(_count(b, "calls") for b in buckets),
        "failures": sum(_count(b, "failures") for b in buckets),
        "replayed": simulate(runs, current, start, end, max_steps).as_dict(),
    }
    return {
        "actual": actual,
        "proposed": simulate(runs, proposed, start, end, max_steps).as_dict(),
    }


def _ms(bucket: dict[str, Any]) -> int:
    return round(bucket["start"].timestamp() * 1000)


def _period(buckets: Sequence[dict[str, Any]]) -> tuple[int, int]:
    last = buckets[-1]
    return _ms(buckets[0]), _ms(last) + int(last["seconds"]) * 1000


def _count(bucket: dict[str, Any], key: str, fallback: str = "") -> int:
    value = bucket.get(key, bucket.get(fallback, 0) if fallback else 0)
    return max(0, int(value or 0))


# --- the real circuit's timeline ----------------------------------------------------------------


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


# --- laying the recorded counts out in time -----------------------------------------------------


def layout(
    buckets: Sequence[dict[str, Any]],
    spans: Sequence[Span],
    policy: Policy,
    max_runs: int | None = None,
) -> list[Run]:
    """Every recorded call as runs in time order, placed in the real circuit's spans.

    Admitted calls go where the real circuit admitted calls (closed spans; a half-open span's
    trial), refused ones where it refused them; within a span calls are evenly spaced and
    failures spread evenly among successes, except the failures that ended in an opening (a
    trial's failure, a closed span's last ``failure_threshold`` failures) which come last.
    Refused calls get estimated outcomes (``estimate``). ``ReplayTooLarge`` past ``max_runs``.
    """
    runs: list[Run] = []
    for bucket in buckets:
        begin = _ms(bucket)
        finish = begin + int(bucket["seconds"]) * 1000
        pieces = _clip(spans, begin, finish)
        calls = _count(bucket, "calls")
        failures = min(calls, _count(bucket, "failures"))
        refused = _count(bucket, "rejected_open", "rejected")
        runs += _bucket_runs(pieces, begin, finish, calls, failures, refused, policy)
        _within(len(runs), max_runs)
    return estimate(runs, max_runs)


def _within(runs: int, max_runs: int | None) -> None:
    if max_runs is not None and runs > max_runs:
        raise ReplayTooLarge(f"more than {max_runs} runs of calls to lay out")


def _clip(spans: Sequence[Span], begin: int, finish: int) -> list[Span]:
    pieces = []
    for span in spans:
        inside = span.start < finish and span.end > begin
        point = span.start == span.end and begin <= span.start < finish
        if inside or point:
            start, end = max(span.start, begin), min(span.end, finish)
            pieces.append(
                Span(
                    start,
                    end,
                    span.kind,
                    trial=span.trial and start == span.start,
                    ends=span.ends if end == span.end else "",
                )
            )
    return pieces or [Span(begin, finish, CLOSED)]


def _shares(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; equal if all 0)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1.0] * len(weights)
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: shares[i] - exact[i])
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _bucket_runs(
    pieces: list[Span],
    begin: int,
    finish: int,
    calls: int,
    failures: int,
    refused: int,
    policy: Policy,
) -> list[Run]:
    admitted = _admitted_counts(pieces, calls)
    refusing = _refused_counts(pieces, refused)
    if sum(admitted) < calls or sum(refusing) < refused:  # the timeline has no room: no events
        pieces = [Span(begin, finish, CLOSED)]
        admitted, refusing = [calls], [refused]
    tails, free = _tails(pieces, admitted, failures, policy)
    left = failures - sum(tails)
    spread = _shares(left, free) if sum(free) >= left else _overflow(admitted, tails, left)
    runs: list[Run] = []
    for piece, n, tail, k, r in zip(pieces, admitted, tails, spread, refusing, strict=True):
        runs += _piece_runs(piece, n, tail, k, r)
    return runs


def _admitted_counts(pieces: list[Span], calls: int) -> list[int]:
    """How many admitted calls each piece gets: one per trial, the rest to closed time."""
    counts = [0] * len(pieces)
    trials = [i for i, p in enumerate(pieces) if p.kind == HALF_OPEN and p.trial]
    for i in trials[:calls]:
        counts[i] = 1
    rest = calls - sum(counts)
    closed = [i for i, p in enumerate(pieces) if p.kind == CLOSED]
    hosts = closed or trials
    weights = [pieces[i].end - pieces[i].start for i in hosts]
    for i, share in zip(hosts, _shares(rest, weights), strict=True):
        counts[i] += share
    return counts


def _refused_counts(pieces: list[Span], refused: int) -> list[int]:
    """Refused calls go to open and forced time; else half-open, else quiet time."""
    counts = [0] * len(pieces)
    for kinds in (REFUSING, (HALF_OPEN,), (QUIET,)):
        hosts = [i for i, p in enumerate(pieces) if p.kind in kinds]
        if hosts:
            weights = [pieces[i].end - pieces[i].start for i in hosts]
            for i, share in zip(hosts, _shares(refused, weights), strict=True):
                counts[i] = share
            break
    return counts


def _tails(
    pieces: list[Span], admitted: list[int], failures: int, policy: Policy
) -> tuple[list[int], list[int]]:
    """Failures that must come last in each piece (those that ended in an opening: a trial's,
    a closed span's last ``failure_threshold``), and how many calls of each piece may take
    the other failures (none of a trial that ended: its outcome is known)."""
    tails, free = [0] * len(pieces), [0] * len(pieces)
    left = failures
    for i, piece in enumerate(pieces):
        n = admitted[i]
        if piece.kind == HALF_OPEN and piece.ends in ("opened", "closed"):
            tails[i] = min(left, n, 1 if piece.ends == "opened" else 0)
        elif piece.kind == CLOSED and piece.ends == "opened":
            tails[i] = min(left, n, max(1, policy.failure_threshold))
            free[i] = n - tails[i]
        else:
            free[i] = n
        left -= tails[i]
    return tails, free


def _overflow(admitted: list[int], tails: list[int], left: int) -> list[int]:
    """More failures than free calls (a record that does not match the timeline): fill up."""
    room = [n - t for n, t in zip(admitted, tails, strict=True)]
    return [min(r, max(0, left - sum(room[:i]))) for i, r in enumerate(room)]


def _piece_runs(piece: Span, admitted: int, tail: int, spread: int, refused: int) -> list[Run]:
    """Admitted calls (``spread`` failures evenly, then ``tail`` failures) then refused ones."""
    total = admitted + refused
    if not total:
        return []
    width = piece.end - piece.start
    cut = piece.start + width * admitted / total  # a piece with both: admitted first
    runs: list[Run] = []
    if admitted:
        # A trial comes first in its span; the run that opened a closed span ends at the
        # opening; other calls are centred in their slots.
        offset = 0.0 if piece.trial else (1.0 if piece.ends == "opened" else 0.5)
        step = (cut - piece.start) / admitted
        blocks = [*_spread(admitted - tail, spread), (tail, True)]
        index = 0
        for length, failed in blocks:
            if length:
                start = piece.start + (index + offset) * step
                runs.append(Run(start, step, length, FAILED if failed else OK))
                index += length
    if refused:
        step = (piece.end - cut) / refused
        code = FORCED if piece.kind == FORCED_SPAN else UNKNOWN
        runs.append(Run(cut + 0.5 * step, step, refused, code))
    return runs


def _spread(n: int, k: int) -> list[tuple[int, bool]]:
    """``n`` outcomes with ``k`` failures spread as evenly as possible, as (length, failed)
    blocks in order; O(min(k, n - k)) blocks."""
    if k <= 0 or k >= n:
        return [(n, k > 0)] if n else []
    minority = min(k, n - k)
    marks = [math.floor((j + 0.5) * n / minority) for j in range(minority)]
    blocks: list[tuple[int, bool]] = []
    previous = 0
    minority_failed = k <= n - k
    for mark in marks:
        blocks += [(mark - previous, not minority_failed), (1, minority_failed)]
        previous = mark + 1
    blocks.append((n - previous, not minority_failed))
    return [(length, failed) for length, failed in blocks if length]


def estimate(runs: list[Run], max_runs: int | None = None) -> list[Run]:
    """Give the refused calls outcomes: each stretch of refused calls fails at a rate going
    linearly from that of the admitted calls just before it to that of those just after it
    (``_rate``; one side alone when the other has none; 100% with none at all)."""
    result: list[Run] = []
    i = 0
    while i < len(runs):
        if runs[i].code != UNKNOWN:
            result.append(runs[i])
            i += 1
            continue
        j = i
        while j < len(runs) and runs[j].code in (UNKNOWN, FORCED):
            j += 1
        result += _guess(runs, i, j)
        _within(len(result), max_runs)
        i = j
    return result


def _guess(runs: list[Run], i: int, j: int) -> list[Run]:
    before = _rate(runs[k] for k in range(i - 1, -1, -1))
    after = _rate(runs[k] for k in range(j, len(runs)))
    before = after if before is None else before
    after = before if after is None else after
    first, last = runs[i].start, runs[j - 1].at(runs[j - 1].count - 1)
    guessed: list[Run] = []
    for run in runs[i:j]:
        if run.code != UNKNOWN:
            guessed.append(run)
            continue
        middle = run.start + run.step * (run.count - 1) / 2
        where = (middle - first) / (last - first) if last > first else 0.5
        rate = 1.0 if before is None or after is None else before + (after - before) * where
        index = 0
        for length, failed in _spread(run.count, round(rate * run.count)):
            start = run.start + index * run.step
            guessed.append(Run(start, run.step, length, GUESS_FAILED if failed else GUESS_OK))
            index += length
    return guessed


def _rate(runs: Iterable[Run]) -> float | None:
    """The failure rate of the admitted calls next to a refused stretch (``runs`` goes away
    from it): the nearest unbroken block of them, at most ``NEIGHBOURS`` calls; None: none."""
    seen = failed = 0
    for run in runs:
        if run.code not in (OK, FAILED):
            if seen:
                break  # the block ends at the next refused call
            continue
        take = min(run.count, NEIGHBOURS - seen)
        seen += take
        failed += take if run.code == FAILED else 0
        if seen >= NEIGHBOURS:
            break
    return failed / seen if seen else None


# --- running the layout through the state machine ----------------------------------------------


class _Simulation:
    """One policy's replay: the engine's own ``acquire``/``record`` on a private state."""

    def __init__(self, policy: Policy, start: int, max_steps: int | None = None) -> None:
        # Durations are not in the history: slow calls and timeouts are already failures, and
        # a call's bulkhead slot is free again as soon as it ends.
        self.policy = dataclasses.replace(
            policy, slow_call_ms=0, call_timeout_ms=0, max_concurrent_calls=0
        )
        self.state = CircuitState("replay")
        self.outcome = Outcome()
        self.opened_at = start
        self.steps_left = math.inf if max_steps is None else max_steps

    def note(self, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            if transition.kind == "opened":
                self.outcome.opened += 1
                if transition.from_state == CLOSED:
                    self.opened_at = transition.at_ms
            elif transition.kind == "closed":
                self.outcome.open_ms += transition.at_ms - self.opened_at

    def admit(self, run: Run, count: int) -> None:
        outcome = self.outcome
        outcome.calls += count
        outcome.failures += count if run.code in FAILURES else 0
        outcome.estimated += count if run.code in GUESSES else 0

    def run(self, run: Run) -> None:
        i = 0
        while i < run.count:
            if self.state.state == OPEN:
                i = self.refuse(run, i)
            elif self.state.state == CLOSED and run.code not in FAILURES:
                i = self.successes(run, i)
            else:
                self.call(run, i)
                i += 1

    def refuse(self, run: Run, i: int) -> int:
        """Calls before the trial time are refused in one step (admitted in monitor mode)."""
        if engine.reject_while_open(self.state, self.policy, run.at(i)) is None:
            self.call(run, i)
            return i + 1
        j = run.index_at(i, self.state.open_until_ms)
        if self.policy.mode == MONITOR:
            self.admit(run, j - i)
        else:
            self.outcome.rejected += j - i
        return j

    def successes(self, run: Run, i: int) -> int:
        """One success (which rolls the window), then the rest of the window's bucket at once
        when no number of successes could trip the circuit."""
        self.call(run, i)
        j = i + 1
        state, policy = self.state, self.policy
        if j < run.count and state.state == CLOSED and engine.successes_cannot_trip(state, policy):
            # Only within the window bucket the first success rolled to: the check holds there.
            k = run.index_at(j, (run.at(i) // policy.bucket_ms + 1) * policy.bucket_ms)
            ticket = engine.closed_ticket(state)
            if ticket is not None and k > j:
                self.note(engine.record_successes(state, policy, run.at(j), [ticket] * (k - j)))
                self.admit(run, k - j)
                j = k
        return j

    def call(self, run: Run, i: int) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise ReplayTooLarge("more calls to replay one by one than the replay may take")
        at = run.at(i)
        ticket = engine.acquire(self.state, self.policy, at)
        self.note(ticket.transitions)
        if not ticket.admitted:
            self.outcome.rejected += 1
            return
        self.admit(run, 1)
        failed = run.code in FAILURES
        self.note(engine.record(self.state, self.policy, at, ticket, not failed, 0))


def simulate(
    runs: Sequence[Run], policy: Policy, start: int, end: int, max_steps: int | None = None
) -> Outcome:
    """What a circuit under ``policy`` does with ``runs`` (``layout``) over ``[start, end)``.

    The replay starts closed with empty counters; calls are instantaneous (a trial ends as
    it starts). A kill switch's refusals stay refused; ``forced_open`` refuses everything and
    ``disabled`` nothing, as the call path does before the engine is asked.
    """
    sim = _Simulation(policy, start, max_steps)
    outcome = sim.outcome
    mode = policy.mode
    for run in runs:
        if run.code == FORCED or mode == FORCED_OPEN:
            outcome.rejected += run.count
        elif mode == DISABLED:
            sim.admit(run, run.count)
        else:
            sim.run(run)
    if mode == FORCED_OPEN:
        outcome.open_ms = end - start
    elif sim.state.state != CLOSED:
        outcome.open_ms += end - sim.opened_at
    return outcome
