"""A closed circuit: consecutive failures, failure rate, the sliding window, slow calls."""

from __future__ import annotations

import dataclasses

import pytest

from resilience import engine
from resilience.engine import Policy, Transition
from tests.engine.helpers import T0, call, fresh, rate_policy, trip

# --- closed: consecutive failures ---------------------------------------------------------------


def test_consecutive_failures_trip_on_the_threshold():
    state, policy = fresh(), Policy(failure_threshold=3, recovery_timeout=10)
    for _ in range(2):
        assert call(state, policy, T0, success=False)[1] == []
    _, transitions = call(state, policy, T0 + 5, success=False)
    assert transitions == [
        Transition(
            id="e1:1",
            circuit="svc",
            kind="opened",
            from_state="closed",
            to_state="open",
            generation=1,
            at_ms=T0 + 5,
            failure_count=3,
            failure_rate=100.0,
            retry_after_ms=10_000,
        )
    ]
    assert (state.state, state.generation, state.trips) == ("open", 1, 1)
    assert (state.opened_at_ms, state.open_until_ms) == (T0 + 5, T0 + 10_005)


def test_a_success_restarts_the_run_of_failures():
    state, policy = fresh(), Policy(failure_threshold=3)
    for success in (False, False, True, False, False):
        assert call(state, policy, T0, success=success)[1] == []
    assert state.consecutive_failures == 2
    assert call(state, policy, T0, success=False)[1][0].kind == "opened"


def test_failure_threshold_zero_turns_the_rule_off():
    state, policy = fresh(), Policy(failure_threshold=0)
    for _ in range(500):
        assert call(state, policy, T0, success=False)[1] == []
    assert state.state == "closed"
    assert state.consecutive_failures == 500


# --- closed: failure rate -----------------------------------------------------------------------


def test_rate_needs_minimum_calls():
    state, policy = fresh(), rate_policy()
    for _ in range(9):
        assert call(state, policy, T0, success=False)[1] == []
    opened = call(state, policy, T0, success=False)[1]
    assert [(t.kind, t.failure_count, t.failure_rate) for t in opened] == [("opened", 10, 100.0)]


@pytest.mark.parametrize(
    ("failures", "successes", "threshold", "trips"),
    [(5, 5, 50, True), (4, 6, 50, False), (1, 2, 34, False), (1, 2, 33, True), (10, 0, 100, True)],
)
def test_rate_threshold_is_inclusive_and_exact(failures, successes, threshold, trips):
    state = fresh()
    policy = rate_policy(failure_rate_threshold=threshold, minimum_calls=failures + successes)
    transitions = []
    for _ in range(successes):
        transitions += call(state, policy, T0)[1]
    for _ in range(failures):
        transitions += call(state, policy, T0, success=False)[1]
    assert [t.kind for t in transitions] == (["opened"] if trips else [])


def test_a_success_that_reaches_minimum_calls_can_trip():
    state, policy = fresh(), rate_policy(failure_rate_threshold=80)
    for _ in range(9):
        call(state, policy, T0, success=False)
    assert [t.kind for t in call(state, policy, T0, success=True)[1]] == ["opened"]


def test_rate_threshold_zero_turns_the_rule_off():
    state, policy = fresh(), rate_policy(failure_rate_threshold=0)
    for _ in range(100):
        assert call(state, policy, T0, success=False)[1] == []


# --- the sliding window -------------------------------------------------------------------------


def test_window_expires_bucket_by_bucket():
    state, policy = fresh(), rate_policy(window_seconds=10)  # 1 s buckets
    call(state, policy, T0, success=False)
    call(state, policy, T0 + 4_999)
    snap = lambda now: engine.snapshot(state, policy, now)  # noqa: E731
    assert (snap(T0 + 9_999)["calls_in_window"], snap(T0 + 9_999)["failure_count"]) == (2, 1)
    assert (snap(T0 + 10_000)["calls_in_window"], snap(T0 + 10_000)["failure_count"]) == (1, 0)
    assert snap(T0 + 13_999)["calls_in_window"] == 1
    assert snap(T0 + 14_000)["calls_in_window"] == 0
    assert snap(T0 + 10**9)["failure_rate"] is None


def test_expired_failures_do_not_trip():
    state, policy = fresh(), rate_policy(window_seconds=10, minimum_calls=4)
    for _ in range(3):
        call(state, policy, T0, success=False)
    # 10 s later the three failures have left the window: 1 failure of 1 call < minimum_calls.
    assert call(state, policy, T0 + 10_000, success=False)[1] == []
    for _ in range(3):
        call(state, policy, T0 + 10_000)
    assert (state.win_calls, state.win_failures) == (4, 1)


def test_window_roll_keeps_running_totals_equal_to_the_buckets():
    state, policy = fresh(), rate_policy(window_seconds=10, failure_rate_threshold=0)
    for i in range(60):
        call(state, policy, T0 + i * 370, success=i % 3 == 0)
        assert state.win_calls == sum(state.calls)
        assert state.win_failures == sum(state.failures)
    assert state.win_calls == engine.snapshot(state, policy, T0 + 59 * 370)["calls_in_window"]


def test_a_clock_step_backwards_counts_in_the_newest_bucket():
    state, policy = fresh(), rate_policy(window_seconds=10, failure_rate_threshold=0)
    call(state, policy, T0 + 5_000)
    call(state, policy, T0, success=False)
    assert state.win_head == (T0 + 5_000) // 1000
    assert (state.win_calls, state.win_failures) == (2, 1)


def test_snapshot_does_not_modify_the_state():
    state, policy = fresh(), rate_policy(window_seconds=10)
    call(state, policy, T0, success=False)
    before = state.to_fields()
    engine.snapshot(state, policy, T0 + 50_000)
    assert state.to_fields() == before


def test_changing_the_window_length_clears_only_the_window():
    state, policy = fresh(), Policy(failure_rate_threshold=90, window_seconds=10)
    for _ in range(3):
        call(state, policy, T0, success=False)
    changed = dataclasses.replace(policy, window_seconds=20, version=2)
    assert engine.snapshot(state, changed, T0)["calls_in_window"] == 0
    call(state, changed, T0, success=False)
    assert (state.win_calls, state.bucket_ms, state.consecutive_failures) == (1, 2000, 4)
    assert call(state, changed, T0, success=False)[1][0].kind == "opened"  # 5 in a row


def test_changing_other_fields_keeps_the_window_and_state():
    state, policy = fresh(), rate_policy(window_seconds=10, minimum_calls=100)
    for _ in range(6):
        call(state, policy, T0, success=False)
    lowered = dataclasses.replace(policy, minimum_calls=7, version=2)
    assert call(state, lowered, T0 + 1)[1][0].failure_count == 6
    assert state.win_calls == 7


# --- slow calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "failed"), [(200, False), (201, True), (10_000, True)])
def test_slow_successes_are_failures(duration, failed):
    state, policy = fresh(), Policy(slow_call_ms=200, failure_threshold=1)
    _, transitions = call(state, policy, T0, success=True, duration=duration)
    assert bool(transitions) is failed


def test_slow_call_ms_zero_turns_detection_off():
    state, policy = fresh(), Policy(slow_call_ms=0, failure_threshold=1)
    assert call(state, policy, T0, duration=10**9)[1] == []


def test_slow_trial_reopens_the_circuit():
    state, policy = fresh(), Policy(slow_call_ms=100, failure_threshold=1, recovery_timeout=1)
    trip(state, policy, T0)
    _, transitions = call(state, policy, T0 + 1000, duration=101)
    assert [t.kind for t in transitions] == ["half_opened", "opened"]
