"""A replay's runs of calls played through the engine's own ``acquire``/``record`` under one
policy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from resilience import engine
from resilience.engine_types import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    MONITOR,
    OPEN,
    CircuitState,
    Policy,
    Transition,
)
from resilience.replay.types import FAILURES, FORCED, GUESSES, Outcome, ReplayTooLarge, Run


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
