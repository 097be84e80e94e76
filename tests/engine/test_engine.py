"""The pure state machine, rule by rule (docs/architecture.md, docs/engine.md)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from resilience import engine
from resilience.engine import CircuitState, Policy, Ticket, Transition

T0 = 1_700_000_000_000  # a whole number of seconds, so 1 s buckets start on it


def fresh(name: str = "svc") -> CircuitState:
    return CircuitState(name, epoch="e1")


def call(state, policy, now, success=True, duration=1):
    """One acquire + record; returns (ticket, transitions from both)."""
    ticket = engine.acquire(state, policy, now)
    transitions = list(ticket.transitions)
    if ticket.admitted:
        transitions += engine.record(state, policy, now, ticket, success, duration)
    return ticket, transitions


def trip(state, policy, now):
    """Fail until the circuit opens; returns the ``opened`` transition."""
    for _ in range(10_000):
        _, transitions = call(state, policy, now, success=False)
        if transitions:
            assert [t.kind for t in transitions] == ["opened"]
            return transitions[0]
    raise AssertionError("never tripped")


# --- Policy -------------------------------------------------------------------------------------


def test_policy_defaults_follow_the_design():
    p = Policy()
    assert (p.mode, p.failure_threshold, p.failure_rate_threshold) == ("enforced", 5, 0)
    assert (p.window_seconds, p.minimum_calls, p.slow_call_ms) == (60, 10, 0)
    assert (p.recovery_timeout, p.backoff_multiplier, p.max_recovery_timeout) == (60.0, 1.0, 600.0)
    assert (p.half_open_max_calls, p.success_threshold, p.version) == (1, 1, 0)
    assert p.bucket_ms == 6000
    assert p.permit_ttl_ms == 30_000


def test_policy_is_frozen_and_hashable():
    p = Policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.failure_threshold = 3
    assert hash(p) == hash(Policy())


def test_policy_from_mapping_ignores_unknown_keys_and_coerces():
    p = Policy.from_mapping(
        {
            "name": "payments-api",
            "mode": "monitor",
            "failure_threshold": "3",
            "recovery_timeout": 5,
            "slow_call_ms": None,
            "critical": True,
            "bucket_ms": 1,
        }
    )
    assert p == Policy(mode="monitor", failure_threshold=3, recovery_timeout=5.0)
    assert isinstance(p.recovery_timeout, float)
    assert p.bucket_ms == 6000  # derived, never taken from the mapping


def test_policy_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        Policy(mode="sometimes")


@pytest.mark.parametrize(
    ("window_seconds", "bucket_ms"), [(1, 100), (60, 6000), (7, 700), (0.0155, 2)]
)
def test_bucket_width_is_a_tenth_of_the_window_rounded_up(window_seconds, bucket_ms):
    assert Policy(window_seconds=window_seconds).bucket_ms == bucket_ms


@pytest.mark.parametrize(("slow_call_ms", "ttl"), [(0, 30_000), (15_000, 30_000), (20_000, 40_000)])
def test_permit_ttl(slow_call_ms, ttl):
    assert Policy(slow_call_ms=slow_call_ms).permit_ttl_ms == ttl


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


def rate_policy(**kwargs):
    values = {"failure_threshold": 0, "failure_rate_threshold": 50, "minimum_calls": 10}
    return Policy(**{**values, **kwargs})


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


def half_open(policy, now=T0):
    state = fresh()
    trip(state, policy, now)
    return state, now + engine.open_duration_ms(policy, 1)


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


# --- transitions, generations and serialisation -------------------------------------------------


def test_transition_json_round_trip_is_plain_json():
    state, policy = fresh(), Policy(failure_threshold=1)
    opened = trip(state, policy, T0)
    data = opened.to_json()
    assert json.loads(data)["id"] == "e1:1"
    assert Transition.from_json(data) == opened
    assert Transition.from_json(data.encode()) == opened
    extended = json.dumps({**json.loads(data), "added_later": 1})
    assert Transition.from_json(extended) == opened


def test_generations_increase_by_one_per_transition_with_unique_ids():
    policy = Policy(failure_threshold=1, recovery_timeout=1)
    state, seen, now = fresh(), [], T0
    for i in range(30):
        now += 1000
        _, transitions = call(state, policy, now, success=i % 3 != 0)
        seen += transitions
    seen += engine.reset(state, now)
    assert [t.generation for t in seen] == list(range(1, len(seen) + 1))
    assert len({t.id for t in seen}) == len(seen)
    for before, after in zip(seen, seen[1:], strict=False):
        assert after.from_state == before.to_state


def test_closed_tickets_are_shared_within_a_generation():
    state, policy = fresh(), Policy()
    first = engine.acquire(state, policy, T0)
    assert engine.acquire(state, policy, T0 + 1) is first
    engine.reset(state, T0)
    second = engine.acquire(state, policy, T0)
    assert second is not first and second.generation == 1


# --- CircuitState storage form ------------------------------------------------------------------

FIELDS = {
    "state",
    "epoch",
    "generation",
    "consecutive_failures",
    "run",
    "trips",
    "opened_at_ms",
    "open_until_ms",
    "half_open_successes",
    "permit_seq",
    "bucket_ms",
    "win_head",
    "win_calls",
    "win_failures",
    *(f"c{i}" for i in range(10)),
    *(f"f{i}" for i in range(10)),
}


def test_storage_fields_are_the_documented_redis_hash_layout():
    policy = Policy(failure_threshold=1, half_open_max_calls=2)
    state, now = half_open(policy)
    engine.acquire(state, policy, now)
    engine.acquire(state, policy, now)
    fields = state.to_fields()
    assert set(fields) == FIELDS | {"permit:p1", "permit:p2"}
    assert all(isinstance(v, str | int) and not isinstance(v, bool) for v in fields.values())
    assert fields["permit:p1"] == now + 30_000
    assert fields["state"] == "half_open" and fields["epoch"] == "e1"


def test_storage_round_trip_including_bytes_from_redis():
    policy = rate_policy(window_seconds=10, half_open_max_calls=3)
    state, now = fresh(), T0
    for i in range(25):
        call(state, policy, now + i * 450, success=i % 2 == 0)
    engine.acquire(state, policy, now + 10**6)
    fields = state.to_fields()
    assert CircuitState.from_fields("svc", fields) == state
    as_bytes = {k.encode(): str(v).encode() for k, v in fields.items()}
    assert CircuitState.from_fields("svc", as_bytes) == state


def test_missing_fields_read_as_a_new_closed_circuit():
    state = CircuitState.from_fields("svc", {})
    assert (state.state, state.generation, state.win_calls, state.permits) == ("closed", 0, 0, {})
    assert len(state.epoch) == 12
    assert CircuitState("a").epoch != CircuitState("a").epoch


# --- snapshot -----------------------------------------------------------------------------------


def test_snapshot_of_a_new_circuit():
    snap = engine.snapshot(fresh(), Policy(version=4), T0)
    assert snap == {
        "circuit": "svc",
        "state": "closed",
        "mode": "enforced",
        "generation": 0,
        "epoch": "e1",
        "failure_count": 0,
        "consecutive_failures": 0,
        "calls_in_window": 0,
        "failure_rate": None,
        "opened_at": None,
        "open_until": None,
        "retry_after": 0.0,
        "trips": 0,
        "half_open_permits": 0,
        "half_open_successes": 0,
        "policy_version": 4,
        "in_flight": None,  # not tracked: no cap and no deadline
        "max_concurrent_calls": 0,
    }


def test_snapshot_while_open_and_half_open():
    policy = Policy(failure_threshold=4, failure_rate_threshold=0, recovery_timeout=20)
    state = fresh()
    call(state, policy, T0)
    trip(state, policy, T0)
    snap = engine.snapshot(state, policy, T0 + 5_500)
    assert (snap["state"], snap["opened_at"], snap["open_until"]) == (
        "open",
        T0 / 1000,
        T0 / 1000 + 20,
    )
    assert (snap["retry_after"], snap["trips"]) == (14.5, 1)
    assert (snap["failure_count"], snap["calls_in_window"], snap["failure_rate"]) == (4, 5, 80.0)
    engine.acquire(state, policy, T0 + 20_000)
    snap = engine.snapshot(state, policy, T0 + 21_000)
    assert (snap["state"], snap["half_open_permits"], snap["retry_after"]) == ("half_open", 1, 29.0)
    assert engine.snapshot(state, policy, T0 + 50_000)["half_open_permits"] == 0
    assert engine.snapshot(state, policy, T0 + 50_000)["retry_after"] == 0.0
