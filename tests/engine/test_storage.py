"""Transitions, generations, the storage form of CircuitState and snapshots."""

from __future__ import annotations

import json

from resilience import engine
from resilience.engine import CircuitState, Policy, Transition
from tests.engine.helpers import T0, call, fresh, half_open, rate_policy, trip

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
