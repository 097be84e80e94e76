"""Reset, epochs and the monitor mode."""

from __future__ import annotations

import pytest

from resilience import engine
from resilience.engine import CircuitState, Policy
from tests.engine.helpers import T0, call, fresh, half_open, trip

# --- reset --------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_state", ["closed", "open", "half_open"])
def test_reset_always_makes_one_transition_and_clears_everything(from_state):
    policy = Policy(failure_threshold=2, backoff_multiplier=3)
    state = fresh()
    call(state, policy, T0, success=False)
    if from_state != "closed":
        trip(state, policy, T0)
    if from_state == "half_open":
        engine.acquire(state, policy, T0 + 60_000)
    generation = state.generation
    [reset] = engine.reset(state, T0 + 70_000)
    assert (reset.kind, reset.from_state, reset.to_state) == ("reset", from_state, "closed")
    assert reset.generation == generation + 1 == state.generation
    assert reset.id == f"e1:{generation + 1}"
    assert (state.trips, state.consecutive_failures, state.win_calls, state.permits) == (
        0,
        0,
        0,
        {},
    )
    assert (state.opened_at_ms, state.open_until_ms, state.half_open_successes) == (0, 0, 0)


def test_results_from_before_a_reset_are_ignored():
    state, policy = fresh(), Policy(failure_threshold=1)
    ticket = engine.acquire(state, policy, T0)
    engine.reset(state, T0)
    assert engine.record(state, policy, T0, ticket, False, 1) == []
    assert state.state == "closed"


def test_results_from_an_earlier_epoch_are_ignored():
    """A store that lost the circuit re-creates it (new epoch, generation 0, permit ids from p1):
    a ticket of the lost incarnation matches its generation and permit but must not count."""
    policy = Policy(failure_threshold=1, recovery_timeout=1)
    lost, now = half_open(policy)
    closed = engine.acquire(CircuitState("svc", epoch="e0"), policy, now)
    trial = engine.acquire(lost, policy, now)
    assert (closed.epoch, trial.epoch, trial.generation, trial.permit) == ("e0", "e1", 2, "p1")
    recreated = CircuitState("svc", epoch="e2")
    assert engine.record(recreated, policy, now, closed, False, 1) == []
    assert engine.record_successes(recreated, policy, now, [closed]) == []
    assert (recreated.state, recreated.consecutive_failures, recreated.win_calls) == (
        "closed",
        0,
        0,
    )
    trip(recreated, policy, now)
    now += 1000
    current = engine.acquire(recreated, policy, now)
    assert (current.generation, current.permit) == (trial.generation, trial.permit)
    assert engine.release(recreated, trial) is False
    assert engine.record(recreated, policy, now, trial, True, 1) == []
    assert recreated.state == "half_open" and "p1" in recreated.permits
    assert [t.kind for t in engine.record(recreated, policy, now, current, True, 1)] == ["closed"]


def test_tickets_carry_the_epoch_of_their_circuit():
    policy = Policy(failure_threshold=1, recovery_timeout=1)
    state, now = half_open(policy)
    assert engine.acquire(state, policy, now).epoch == "e1"  # a trial
    assert engine.acquire(state, policy, now).epoch == "e1"  # rejected: permits taken
    engine.reset(state, now)
    assert engine.acquire(state, policy, now).epoch == "e1"  # closed, shared


# --- monitor mode -------------------------------------------------------------------------------


def test_monitor_mode_trips_but_admits_everything():
    policy = Policy(mode="monitor", failure_threshold=2, recovery_timeout=10)
    state = fresh()
    assert trip(state, policy, T0).kind == "opened"
    ticket = engine.acquire(state, policy, T0 + 1)
    assert (ticket.admitted, ticket.monitor_rejected, ticket.retry_after_ms) == (True, True, 9_999)
    # Outcomes of calls enforced mode would have rejected are not counted.
    for _ in range(5):
        assert engine.record(state, policy, T0 + 2, ticket, True, 1) == []
    assert (state.state, state.consecutive_failures, state.win_calls) == ("open", 2, 2)


def test_monitor_mode_trials_decide_the_recovery():
    policy = Policy(mode="monitor", failure_threshold=1, recovery_timeout=10)
    state = fresh()
    trip(state, policy, T0)
    trial = engine.acquire(state, policy, T0 + 10_000)
    extra = engine.acquire(state, policy, T0 + 10_000)
    assert (trial.permit, trial.monitor_rejected) == ("p1", False)
    assert (extra.admitted, extra.permit, extra.monitor_rejected) == (True, None, True)
    assert engine.record(state, policy, T0 + 10_001, extra, False, 1) == []
    assert [t.kind for t in engine.record(state, policy, T0 + 10_002, trial, True, 1)] == ["closed"]


def test_switching_modes_keeps_the_state():
    state = fresh()
    trip(state, Policy(mode="monitor", failure_threshold=1), T0)
    assert not engine.acquire(state, Policy(failure_threshold=1), T0 + 1).admitted
