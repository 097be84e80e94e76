"""The contract every backend honours: subclass ``BackendContract``, provide a ``backend`` fixture.

The ``backend`` fixture must build the backend on the ``clock`` fixture (a ``ManualClock``), so
that ``clock.advance(seconds)`` moves circuit time. Each test uses its own circuit name.
"""

from __future__ import annotations

import uuid

import pytest

from resilience.engine import Policy, Transition

SNAPSHOT_KEYS = {
    "state": str,
    "mode": str,
    "generation": int,
    "failure_count": int,
    "consecutive_failures": int,
    "calls_in_window": int,
    "trips": int,
    "half_open_permits": int,
    "half_open_successes": int,
    "retry_after": float,
}


def fail(backend, name, policy, times=1, duration_ms=1):
    transitions = []
    for _ in range(times):
        ticket = backend.acquire(name, policy)
        transitions += ticket.transitions
        if ticket.admitted:
            transitions += backend.record(ticket, policy, False, duration_ms)
    return transitions


def succeed(backend, name, policy, times=1, duration_ms=1):
    transitions = []
    for _ in range(times):
        ticket = backend.acquire(name, policy)
        transitions += ticket.transitions
        if ticket.admitted:
            transitions += backend.record(ticket, policy, True, duration_ms)
    return transitions


class BackendContract:
    """Behaviour shared by every ``Backend``; memory and Redis must agree call for call."""

    @pytest.fixture
    def name(self):
        return f"contract-{uuid.uuid4().hex[:10]}"

    # --- closed ---------------------------------------------------------------------------------

    def test_a_new_circuit_admits_calls(self, backend, name):
        ticket = backend.acquire(name, Policy())
        assert (ticket.circuit, ticket.admitted, ticket.state, ticket.permit) == (
            name,
            True,
            "closed",
            None,
        )
        assert backend.record(ticket, Policy(), True, 3) == []

    def test_snapshot_of_an_unknown_circuit_is_closed_and_creates_nothing(self, backend, name):
        snap = backend.snapshot(name, Policy(version=3))
        for key, kind in SNAPSHOT_KEYS.items():
            assert isinstance(snap[key], kind), key
        assert (snap["state"], snap["generation"], snap["calls_in_window"]) == ("closed", 0, 0)
        assert (snap["failure_rate"], snap["opened_at"], snap["retry_after"]) == (None, None, 0.0)
        assert backend.outbox(name) == []

    def test_successes_are_counted_exactly(self, backend, name):
        policy = Policy(failure_rate_threshold=50)
        succeed(backend, name, policy, times=700)
        fail(backend, name, policy, times=2)
        succeed(backend, name, policy, times=300)
        snap = backend.snapshot(name, policy)
        assert (snap["calls_in_window"], snap["failure_count"]) == (1002, 2)
        assert snap["failure_rate"] == pytest.approx(200 / 1002)
        assert snap["consecutive_failures"] == 0

    def test_counted_calls_leave_the_window(self, backend, name, clock):
        policy = Policy(window_seconds=10)
        succeed(backend, name, policy, times=5)
        fail(backend, name, policy)
        clock.advance(9)
        assert backend.snapshot(name, policy)["calls_in_window"] == 6
        succeed(backend, name, policy, times=2)
        clock.advance(1)
        snap = backend.snapshot(name, policy)
        assert (snap["calls_in_window"], snap["failure_count"]) == (2, 0)
        clock.advance(60)
        assert backend.snapshot(name, policy)["calls_in_window"] == 0

    # --- trips ----------------------------------------------------------------------------------

    def test_consecutive_failures_open_the_circuit_once(self, backend, name, clock):
        policy = Policy(failure_threshold=3, recovery_timeout=20)
        assert fail(backend, name, policy, times=2) == []
        [opened] = fail(backend, name, policy)
        assert (opened.kind, opened.from_state, opened.to_state) == ("opened", "closed", "open")
        assert (opened.circuit, opened.generation, opened.failure_count) == (name, 1, 3)
        assert (opened.at_ms, opened.retry_after_ms) == (clock.now_ms(), 20_000)
        clock.advance(5)
        rejected = backend.acquire(name, policy)
        assert (rejected.admitted, rejected.state, rejected.retry_after_ms) == (
            False,
            "open",
            15_000,
        )
        snap = backend.snapshot(name, policy)
        assert (snap["state"], snap["retry_after"], snap["trips"]) == ("open", 15.0, 1)
        assert snap["opened_at"] == pytest.approx(opened.at_ms / 1000)
        assert backend.outbox(name) == [opened]

    def test_the_failure_rate_opens_the_circuit_after_minimum_calls(self, backend, name, clock):
        policy = Policy(failure_threshold=0, failure_rate_threshold=50, minimum_calls=4)
        assert fail(backend, name, policy, times=3) == []
        clock.advance(60)  # those three left the window
        assert succeed(backend, name, policy, times=2) == []
        assert fail(backend, name, policy) == []
        [opened] = fail(backend, name, policy)
        assert (opened.kind, opened.failure_rate) == ("opened", 50.0)

    def test_slow_calls_count_as_failures(self, backend, name):
        policy = Policy(failure_threshold=2, slow_call_ms=100)
        assert succeed(backend, name, policy, times=5, duration_ms=100) == []
        assert succeed(backend, name, policy, duration_ms=101) == []
        assert [t.kind for t in succeed(backend, name, policy, duration_ms=5000)] == ["opened"]

    # --- recovery -------------------------------------------------------------------------------

    def test_recovery_goes_through_half_open(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=10)
        fail(backend, name, policy)
        clock.advance(9.999)
        assert not backend.acquire(name, policy).admitted
        clock.advance(0.001)
        trial = backend.acquire(name, policy)
        assert (trial.admitted, trial.state, trial.generation) == (True, "half_open", 2)
        assert trial.permit is not None
        assert [t.kind for t in trial.transitions] == ["half_opened"]
        assert not backend.acquire(name, policy).admitted
        [closed] = backend.record(trial, policy, True, 1)
        assert (closed.kind, closed.from_state, closed.generation) == ("closed", "half_open", 3)
        assert [t.kind for t in backend.outbox(name)] == ["opened", "half_opened", "closed"]
        snap = backend.snapshot(name, policy)
        assert (snap["state"], snap["trips"], snap["consecutive_failures"]) == ("closed", 0, 0)

    def test_half_open_permits_are_limited_and_released(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=1, half_open_max_calls=2)
        fail(backend, name, policy)
        clock.advance(1)
        a, b = backend.acquire(name, policy), backend.acquire(name, policy)
        assert a.permit and b.permit and a.permit != b.permit
        third = backend.acquire(name, policy)
        assert (third.admitted, third.state, third.retry_after_ms) == (False, "half_open", 30_000)
        assert backend.snapshot(name, policy)["half_open_permits"] == 2
        backend.release(a, policy)
        backend.release(a, policy)  # twice is harmless
        assert backend.snapshot(name, policy)["half_open_permits"] == 1
        c = backend.acquire(name, policy)
        assert c.admitted and c.permit not in (a.permit, b.permit)
        assert backend.record(a, policy, False, 1) == []  # released: no outcome any more
        assert backend.snapshot(name, policy)["state"] == "half_open"

    def test_success_threshold(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=1, success_threshold=2)
        fail(backend, name, policy)
        clock.advance(1)
        assert succeed(backend, name, policy)[0].kind == "half_opened"
        assert backend.snapshot(name, policy)["half_open_successes"] == 1
        assert [t.kind for t in succeed(backend, name, policy)] == ["closed"]

    def test_a_failed_trial_reopens_with_backoff_up_to_the_cap(self, backend, name, clock):
        policy = Policy(
            failure_threshold=1, recovery_timeout=10, backoff_multiplier=3, max_recovery_timeout=50
        )
        durations = [t.retry_after_ms for t in fail(backend, name, policy)]
        for _ in range(3):
            clock.advance(durations[-1] / 1000)
            half_opened, opened = fail(backend, name, policy)
            assert (half_opened.kind, opened.kind, opened.from_state) == (
                "half_opened",
                "opened",
                "half_open",
            )
            durations.append(opened.retry_after_ms)
        assert durations == [10_000, 30_000, 50_000, 50_000]
        assert backend.snapshot(name, policy)["trips"] == 4
        clock.advance(50)
        succeed(backend, name, policy)
        assert fail(backend, name, policy)[0].retry_after_ms == 10_000

    def test_late_results_are_ignored(self, backend, name, clock):
        policy = Policy(failure_threshold=2, recovery_timeout=1)
        early = backend.acquire(name, policy)
        fail(backend, name, policy, times=2)
        assert backend.record(early, policy, False, 1) == []
        clock.advance(1)
        trial = backend.acquire(name, policy)
        assert backend.record(early, policy, True, 1) == []
        assert backend.snapshot(name, policy)["state"] == "half_open"
        backend.reset(name, policy)
        assert backend.record(trial, policy, False, 1) == []
        assert backend.snapshot(name, policy)["state"] == "closed"

    def test_an_unreported_permit_expires(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=1, slow_call_ms=25_000)
        fail(backend, name, policy)
        clock.advance(1)
        lost = backend.acquire(name, policy)
        clock.advance(49.999)
        assert not backend.acquire(name, policy).admitted
        clock.advance(0.001)
        assert backend.snapshot(name, policy)["half_open_permits"] == 0
        fresh = backend.acquire(name, policy)
        assert fresh.admitted and fresh.permit != lost.permit
        assert backend.record(lost, policy, True, 1) == []
        assert backend.snapshot(name, policy)["state"] == "half_open"

    # --- modes, policy changes, reset -----------------------------------------------------------

    def test_monitor_mode_never_rejects_but_transitions(self, backend, name, clock):
        policy = Policy(mode="monitor", failure_threshold=2, recovery_timeout=5)
        [opened] = fail(backend, name, policy, times=2)
        ticket = backend.acquire(name, policy)
        assert (ticket.admitted, ticket.monitor_rejected, ticket.retry_after_ms) == (
            True,
            True,
            5000,
        )
        assert backend.record(ticket, policy, True, 1) == []
        assert backend.snapshot(name, policy)["state"] == "open"
        clock.advance(5)
        trial, extra = backend.acquire(name, policy), backend.acquire(name, policy)
        assert not trial.monitor_rejected and extra.monitor_rejected and extra.admitted
        assert backend.record(extra, policy, False, 1) == []
        assert [t.kind for t in backend.record(trial, policy, True, 1)] == ["closed"]

    def test_policy_changes_keep_the_state(self, backend, name):
        strict = Policy(failure_threshold=5)
        fail(backend, name, strict, times=4)
        relaxed = Policy(failure_threshold=10, version=2)
        assert fail(backend, name, relaxed, times=3) == []
        assert backend.snapshot(name, relaxed)["consecutive_failures"] == 7
        assert [t.kind for t in fail(backend, name, strict)] == ["opened"]

    def test_a_lowered_rate_threshold_applies_to_the_next_success(self, backend, name):
        lenient = Policy(failure_threshold=0, failure_rate_threshold=50, minimum_calls=10)
        succeed(backend, name, lenient, times=10)
        fail(backend, name, lenient, times=4)
        assert succeed(backend, name, lenient, times=3) == []
        strict = Policy(failure_threshold=0, failure_rate_threshold=20, minimum_calls=10, version=2)
        [opened] = succeed(backend, name, strict)
        assert (opened.kind, opened.failure_count) == ("opened", 4)
        assert opened.failure_rate == pytest.approx(400 / 18)

    def test_a_new_window_length_clears_only_the_window(self, backend, name):
        policy = Policy(failure_threshold=5, window_seconds=60)
        fail(backend, name, policy, times=4)
        longer = Policy(failure_threshold=5, window_seconds=120, version=2)
        snap = backend.snapshot(name, longer)
        assert (snap["calls_in_window"], snap["consecutive_failures"]) == (0, 4)
        [opened] = fail(backend, name, longer)
        assert backend.snapshot(name, longer)["calls_in_window"] == 1
        assert opened.failure_count == 5

    @pytest.mark.parametrize("from_state", ["closed", "open", "half_open"])
    def test_reset_makes_exactly_one_transition(self, backend, name, clock, from_state):
        policy = Policy(failure_threshold=2, recovery_timeout=1, backoff_multiplier=2)
        fail(backend, name, policy, times=1 if from_state == "closed" else 2)
        if from_state == "half_open":
            clock.advance(1)
            backend.acquire(name, policy)
        [reset] = backend.reset(name, policy)
        assert (reset.kind, reset.from_state, reset.to_state) == ("reset", from_state, "closed")
        assert backend.outbox(name, limit=1000)[-1] == reset
        snap = backend.snapshot(name, policy)
        assert (snap["state"], snap["consecutive_failures"], snap["trips"]) == ("closed", 0, 0)
        assert (snap["calls_in_window"], snap["half_open_permits"]) == (0, 0)
        assert snap["generation"] == reset.generation
        assert fail(backend, name, policy) == []  # the run of failures starts again

    # --- transitions and the outbox -------------------------------------------------------------

    def test_transition_ids_are_unique_and_generations_consecutive(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=1)
        returned = []
        for i in range(6):
            returned += (fail if i % 2 == 0 else succeed)(backend, name, policy)
            clock.advance(1)
        returned += backend.reset(name, policy)
        assert [t.generation for t in returned] == list(range(1, len(returned) + 1))
        assert len({t.id for t in returned}) == len(returned)
        assert all(t.id.endswith(f":{t.generation}") for t in returned)
        assert backend.outbox(name, limit=1000) == returned
        assert [Transition.from_json(t.to_json()) for t in returned] == returned

    def test_outbox_pages_oldest_first_and_ack_removes(self, backend, name):
        policy = Policy()
        resets = [backend.reset(name, policy)[0] for _ in range(5)]
        assert backend.outbox(name, limit=2) == resets[:2]
        backend.ack(name, [resets[0].id, resets[2].id, "no-such-id"])
        assert backend.outbox(name) == [resets[1], resets[3], resets[4]]
        backend.ack(name, [])
        backend.ack(f"{name}-unknown", [resets[1].id])
        assert len(backend.outbox(name)) == 3

    def test_outbox_keeps_the_newest_thousand(self, backend, name):
        policy = Policy()
        for _ in range(1005):
            backend.reset(name, policy)
        kept = backend.outbox(name, limit=5000)
        assert len(kept) == 1000
        assert (kept[0].generation, kept[-1].generation) == (6, 1005)

    # --- many circuits --------------------------------------------------------------------------

    def test_circuits_are_independent(self, backend, name):
        policy = Policy(failure_threshold=1)
        fail(backend, name, policy)
        assert backend.acquire(f"{name}-other", policy).admitted
        assert backend.snapshot(f"{name}-other", policy)["state"] == "closed"
        assert backend.outbox(f"{name}-other") == []

    def test_snapshot_many_matches_snapshot(self, backend, name, clock):
        tripped, busy, unknown = f"{name}-a", f"{name}-b", f"{name}-c"
        policies = {
            tripped: Policy(failure_threshold=1),
            busy: Policy(failure_rate_threshold=50),
            unknown: Policy(version=7),
        }
        fail(backend, tripped, policies[tripped])
        succeed(backend, busy, policies[busy], times=3)
        fail(backend, busy, policies[busy])
        clock.advance(1)
        many = backend.snapshot_many(policies)
        assert set(many) == set(policies)
        for circuit, policy in policies.items():
            single = backend.snapshot(circuit, policy)
            assert {k: v for k, v in many[circuit].items() if k != "epoch"} == {
                k: v for k, v in single.items() if k != "epoch"
            }
        assert many[tripped]["state"] == "open"
        assert many[busy]["failure_rate"] == 25.0
        assert backend.snapshot_many({}) == {}

    def test_health(self, backend):
        health = backend.health()
        assert isinstance(health["backend"], str) and health["degraded"] is False
