"""An open and a half-open circuit, and the backoff between openings."""

from __future__ import annotations

import pytest

from resilience import engine
from resilience.engine import CircuitState, Policy, Ticket
from tests.engine.helpers import T0, call, fresh, half_open, trip

# --- open ---------------------------------------------------------------------------------------


def test_open_rejects_with_retry_after_until_the_recovery_timeout():
    state, policy = fresh(), Policy(failure_threshold=1, recovery_timeout=30)
    trip(state, policy, T0)
    ticket = engine.acquire(state, policy, T0 + 12_345)
    assert ticket == Ticket("svc", False, "open", 1, None, 17_655, False, (), state.epoch)
    assert engine.acquire(state, policy, T0 + 29_999).retry_after_ms == 1


def test_the_first_call_after_the_timeout_half_opens_and_gets_a_permit():
    state, policy = fresh(), Policy(failure_threshold=1, recovery_timeout=30)
    trip(state, policy, T0)
    ticket = engine.acquire(state, policy, T0 + 30_000)
    assert (ticket.admitted, ticket.state, ticket.generation, ticket.permit) == (
        True,
        "half_open",
        2,
        "p1",
    )
    [half_opened] = ticket.transitions
    assert (half_opened.kind, half_opened.from_state, half_opened.to_state) == (
        "half_opened",
        "open",
        "half_open",
    )
    assert (half_opened.id, half_opened.at_ms, half_opened.retry_after_ms) == (
        "e1:2",
        T0 + 30_000,
        0,
    )


def test_results_of_calls_admitted_before_the_trip_are_ignored():
    state, policy = fresh(), Policy(failure_threshold=2, recovery_timeout=1)
    slow = engine.acquire(state, policy, T0)
    trip(state, policy, T0)
    assert engine.record(state, policy, T0, slow, True, 1) == []
    ticket = engine.acquire(state, policy, T0 + 1000)  # half-open now
    assert engine.record(state, policy, T0 + 1000, slow, True, 1) == []
    assert engine.record(state, policy, T0 + 1000, slow, False, 1) == []
    assert state.state == "half_open"
    assert state.permits == {"p1": T0 + 1000 + policy.permit_ttl_ms}
    assert [t.kind for t in engine.record(state, policy, T0 + 1000, ticket, True, 1)] == ["closed"]


def test_rejected_tickets_have_no_effect():
    state, policy = fresh(), Policy(failure_threshold=1)
    trip(state, policy, T0)
    rejected = engine.acquire(state, policy, T0)
    assert engine.record(state, policy, T0, rejected, False, 1) == []
    assert engine.release(state, rejected) is False
    assert state.trips == 1


# --- half-open ----------------------------------------------------------------------------------


def test_only_half_open_max_calls_permits_are_issued():
    policy = Policy(failure_threshold=1, half_open_max_calls=3, success_threshold=5)
    state, now = half_open(policy)
    tickets = [engine.acquire(state, policy, now + i) for i in range(5)]
    assert [t.permit for t in tickets] == ["p1", "p2", "p3", None, None]
    assert tickets[3].retry_after_ms == policy.permit_ttl_ms - 3  # until p1 expires
    assert not tickets[4].admitted


def test_released_permits_can_be_reissued():
    policy = Policy(failure_threshold=1)
    state, now = half_open(policy)
    first = engine.acquire(state, policy, now)
    assert not engine.acquire(state, policy, now).admitted
    assert engine.release(state, first) is True
    assert engine.release(state, first) is False
    second = engine.acquire(state, policy, now)
    assert second.permit == "p2"
    assert engine.record(state, policy, now, first, True, 1) == []  # released: no outcome
    assert [t.kind for t in engine.record(state, policy, now, second, True, 1)] == ["closed"]


def test_success_threshold_closes_after_enough_trials():
    policy = Policy(failure_threshold=1, half_open_max_calls=2, success_threshold=3)
    state, now = half_open(policy)
    a, b = engine.acquire(state, policy, now), engine.acquire(state, policy, now)
    assert engine.record(state, policy, now, a, True, 1) == []
    assert engine.record(state, policy, now, b, True, 1) == []
    assert state.half_open_successes == 2
    c = engine.acquire(state, policy, now + 1)
    [closed] = engine.record(state, policy, now + 2, c, True, 1)
    assert (closed.kind, closed.from_state, closed.to_state, closed.generation) == (
        "closed",
        "half_open",
        "closed",
        3,
    )
    assert (closed.failure_count, closed.failure_rate) == (0, None)
    assert (
        state.to_fields() | {"permit_seq": 0, "win_head": 0}
        == CircuitState("svc", epoch="e1", generation=3, bucket_ms=state.bucket_ms).to_fields()
    )


def test_a_failed_trial_reopens_at_once_and_drops_other_permits():
    policy = Policy(failure_threshold=1, half_open_max_calls=2, recovery_timeout=10)
    state, now = half_open(policy)
    a, b = engine.acquire(state, policy, now), engine.acquire(state, policy, now)
    [opened] = engine.record(state, policy, now + 5, a, False, 1)
    assert (opened.kind, opened.from_state, opened.generation, state.trips) == (
        "opened",
        "half_open",
        3,
        2,
    )
    assert state.permits == {}
    assert engine.record(state, policy, now + 6, b, True, 1) == []
    assert state.state == "open"


def test_expired_permits_free_their_slot_and_their_results_are_ignored():
    policy = Policy(failure_threshold=1, slow_call_ms=20_000)  # ttl 40 s
    state, now = half_open(policy)
    crashed = engine.acquire(state, policy, now)
    assert not engine.acquire(state, policy, now + 39_999).admitted
    fresh_trial = engine.acquire(state, policy, now + 40_000)
    assert fresh_trial.permit == "p2"
    assert list(state.permits) == ["p2"]
    assert engine.record(state, policy, now + 40_001, crashed, False, 1) == []
    assert state.state == "half_open"


def test_a_result_at_the_expiry_instant_is_ignored():
    policy = Policy(failure_threshold=1)
    state, now = half_open(policy)
    ticket = engine.acquire(state, policy, now)
    assert engine.record(state, policy, now + policy.permit_ttl_ms, ticket, True, 1) == []
    assert state.state == "half_open" and state.permits == {}


def test_a_permit_counts_once():
    policy = Policy(failure_threshold=1, success_threshold=2, half_open_max_calls=2)
    state, now = half_open(policy)
    ticket = engine.acquire(state, policy, now)
    engine.record(state, policy, now, ticket, True, 1)
    assert engine.record(state, policy, now, ticket, True, 1) == []
    assert state.half_open_successes == 1


def test_zero_half_open_calls_rejects_without_crashing():
    policy = Policy(failure_threshold=1, half_open_max_calls=0)
    state, now = half_open(policy)
    ticket = engine.acquire(state, policy, now)
    assert not ticket.admitted and ticket.retry_after_ms == 0
    assert [t.kind for t in ticket.transitions] == ["half_opened"]


# --- backoff ------------------------------------------------------------------------------------


def test_backoff_grows_until_the_cap_and_restarts_after_a_full_close():
    policy = Policy(
        failure_threshold=1, recovery_timeout=10, backoff_multiplier=2, max_recovery_timeout=35
    )
    state, now, durations = fresh(), T0, []
    opened = trip(state, policy, now)
    for _ in range(4):
        durations.append(opened.retry_after_ms)
        now += opened.retry_after_ms
        _, transitions = call(state, policy, now, success=False)
        assert [t.kind for t in transitions] == ["half_opened", "opened"]
        opened = transitions[1]
    assert durations == [10_000, 20_000, 35_000, 35_000]
    assert state.trips == 5
    now += opened.retry_after_ms
    call(state, policy, now)
    assert (state.state, state.trips) == ("closed", 0)
    assert trip(state, policy, now).retry_after_ms == 10_000


@pytest.mark.parametrize(
    ("multiplier", "trips", "expected"),
    [(1.0, 50, 1500), (2.0, 1, 1500), (2.0, 3, 6000), (1.5, 2, 2250), (100.0, 10**6, 7_200_000)],
)
def test_open_duration(multiplier, trips, expected):
    policy = Policy(recovery_timeout=1.5, backoff_multiplier=multiplier, max_recovery_timeout=7200)
    assert engine.open_duration_ms(policy, trips) == expected


def test_open_duration_is_floored_to_the_millisecond():
    assert engine.open_duration_ms(Policy(recovery_timeout=0.0019), 1) == 1
