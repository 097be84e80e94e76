"""RedisBackend against the shared backend contract, and differentially against the engine and
the memory backend (hypothesis: same operations, same clock, same answers)."""

from __future__ import annotations

import pytest
import redis as redis_py
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from resilience import engine
from resilience.backends.base import OUTBOX_MAX
from resilience.backends.memory import MemoryBackend
from resilience.clock import ManualClock
from resilience.engine import CircuitState, Policy
from tests.backends.bulkhead_contract import BulkheadContract
from tests.backends.contract import BackendContract
from tests.backends.history_contract import HistoryContract
from tests.backends.index_contract import NotClosedIndexContract
from tests.backends.redis_helpers import (
    make_backend,
    stored_fields,
)


class TestContract(BackendContract, BulkheadContract, NotClosedIndexContract, HistoryContract):
    @pytest.fixture
    def backend(self, redis_backend):
        return redis_backend


class TestContractWithoutDeferral(BackendContract, BulkheadContract, NotClosedIndexContract):
    @pytest.fixture
    def backend(self, redis_url, clock):
        backend = make_backend(redis_url, clock, defer_successes=False)
        yield backend
        backend.close()


# --- differential: memory and Redis, same operations, same clock -------------------------------

CIRCUITS = ("a", "b")
policies = st.builds(
    Policy,
    mode=st.sampled_from(["enforced", "enforced", "monitor"]),
    failure_threshold=st.integers(0, 4),
    failure_rate_threshold=st.sampled_from([0, 0, 34, 50, 100]),
    window_seconds=st.integers(1, 4),
    minimum_calls=st.integers(1, 5),
    slow_call_ms=st.sampled_from([0, 0, 20, 16_000]),
    recovery_timeout=st.sampled_from([0.001, 0.5, 1.0, 2.25]),
    backoff_multiplier=st.sampled_from([1.0, 1.5, 3.0, 3.0]),
    max_recovery_timeout=st.sampled_from([1.0, 4.0, 100.0]),
    half_open_max_calls=st.integers(1, 3),
    success_threshold=st.integers(1, 3),
    max_concurrent_calls=st.sampled_from([0, 0, 1, 2]),
    call_timeout_ms=st.sampled_from([0, 0, 30, 8000]),
    version=st.integers(0, 3),
)
circuit = st.sampled_from(CIRCUITS)
# Which earlier ticket a record/release uses: mostly one of the newest, sometimes any.
ticket_ref = st.one_of(st.integers(0, 1), st.integers(0, 1), st.integers(0, 50))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), circuit),
        st.tuples(st.just("call"), circuit, st.booleans(), st.integers(0, 40)),
        st.tuples(st.just("call"), circuit, st.booleans(), st.integers(0, 40)),
        st.tuples(st.just("record"), ticket_ref, st.booleans(), st.integers(0, 40)),
        st.tuples(st.just("record"), ticket_ref, st.booleans(), st.integers(0, 40)),
        st.tuples(st.just("release"), ticket_ref),
        st.tuples(st.just("end"), ticket_ref),
        st.tuples(st.just("renew"), ticket_ref),
        st.tuples(st.just("reset"), circuit),
        st.tuples(st.just("policy"), circuit, policies),
        st.tuples(st.just("advance"), st.sampled_from([1, 7, 99, 400, 1000, 2250, 4000, 31_000])),
        st.tuples(st.just("clock_back"), st.sampled_from([1, 500])),
        st.tuples(st.just("snapshot"), circuit),
        st.tuples(st.just("ack"), circuit),
        st.tuples(st.just("lose"), circuit),
    ),
    max_size=60,
)
initial_policies = st.fixed_dictionaries({name: policies for name in CIRCUITS})


def norm_transition(t):
    """A transition without its epoch (random per store); everything else must be equal."""
    epoch, _, generation = t.id.rpartition(":")
    assert epoch and generation == str(t.generation)
    return (*(v for k, v in t.to_dict().items() if k != "id"), generation)


def norm_ticket(ticket):
    return (
        ticket.circuit,
        ticket.admitted,
        ticket.state,
        ticket.generation,
        ticket.permit,
        ticket.retry_after_ms,
        ticket.monitor_rejected,
        [norm_transition(t) for t in ticket.transitions],
        ticket.slot is not None,  # slot ids are the store's own
        ticket.over_cap,
    )


def norm_snapshot(snap):
    return {k: v for k, v in snap.items() if k != "epoch"}


class EngineReference:
    """The specification: each operation is exactly one ``resilience.engine`` call, at once."""

    def __init__(self, clock):
        self.clock = clock
        self.states = {}
        self.outboxes = {}

    def _state(self, name):
        if name not in self.states:
            self.states[name] = CircuitState(name)
            self.outboxes[name] = []
        return self.states[name]

    def _publish(self, name, transitions):
        self.outboxes[name] = (self.outboxes[name] + list(transitions))[-OUTBOX_MAX:]
        return list(transitions)

    def acquire(self, name, policy):
        ticket = engine.acquire(self._state(name), policy, self.clock.now_ms())
        self._publish(name, ticket.transitions)
        return ticket

    def record(self, ticket, policy, success, duration_ms):
        state = self._state(ticket.circuit)
        now = self.clock.now_ms()
        return self._publish(
            ticket.circuit, engine.record(state, policy, now, ticket, success, duration_ms)
        )

    def release(self, ticket, policy):
        engine.release(self._state(ticket.circuit), ticket)

    def return_slot(self, ticket, policy):
        engine.return_slot(self._state(ticket.circuit), ticket)

    def renew_slots(self, name, policy, tickets):
        engine.renew_slots(self._state(name), policy, self.clock.now_ms(), tickets)

    def reset(self, name, policy):
        return self._publish(name, engine.reset(self._state(name), self.clock.now_ms()))

    def snapshot(self, name, policy):
        state = self.states.get(name) or CircuitState(name, epoch="")
        return engine.snapshot(state, policy, self.clock.now_ms())

    def snapshot_many(self, policies):
        return {name: self.snapshot(name, policy) for name, policy in policies.items()}

    def outbox(self, name, limit=100):
        return self.outboxes.get(name, [])[:limit]

    def ack(self, name, ids):
        if name in self.outboxes:
            self.outboxes[name] = [t for t in self.outboxes[name] if t.id not in ids]

    def lose(self, name):
        """The store lost the circuit: the next operation starts a new one (a new epoch)."""
        self.states.pop(name, None)
        self.outboxes.pop(name, None)

    def stored_state(self, name):
        state = CircuitState.from_fields(name, self._state(name).to_fields())
        state.epoch = ""
        return state


def pick(tickets, ref):
    return tickets[-1 - ref] if ref < len(tickets) else tickets[ref % len(tickets)]


def run_differential(url, ops, defer, reference="engine", initial=None):
    # No background flush of deferred successes while the test deletes keys behind the
    # backend's back: only the operations below (and the final flush) apply them, in order.
    with override_settings(RESILIENCE={"POLICY_REFRESH_SECONDS": 3600}):
        _run_differential(url, ops, defer, reference, initial)


def _run_differential(url, ops, defer, reference, initial):
    clock = ManualClock()
    memory = EngineReference(clock) if reference == "engine" else MemoryBackend(clock=clock)
    backend = make_backend(url, clock, defer_successes=defer)
    client = redis_py.Redis.from_url(url, decode_responses=True)
    current = dict(initial or dict.fromkeys(CIRCUITS, Policy(failure_threshold=2)))
    tickets = []  # (memory ticket, redis ticket, policy at acquire)
    try:
        for step, op in enumerate(ops):
            kind = op[0]
            where = f"step {step}: {op}"
            if kind in ("acquire", "call"):
                name = op[1]
                m, r = memory.acquire(name, current[name]), backend.acquire(name, current[name])
                assert norm_ticket(r) == norm_ticket(m), where
                tickets.append((m, r))
                if kind == "call":  # acquire, record its outcome and end the call at once
                    kind, op = "record", ("record", 0, *op[2:], "end")
            if kind in ("record", "release", "end", "renew") and tickets:
                m, r = pick(tickets, op[1])
                policy = current[m.circuit]
                if kind == "record":
                    got = backend.record(r, policy, op[2], op[3])
                    want = memory.record(m, policy, op[2], op[3])
                    assert [norm_transition(t) for t in got] == [
                        norm_transition(t) for t in want
                    ], where
                    if op[-1] == "end":
                        memory.return_slot(m, policy)
                        backend.return_slot(r, policy)
                elif kind == "release":
                    memory.release(m, policy)
                    backend.release(r, policy)
                elif kind == "renew":  # the watchdog extending a running call's lease
                    memory.renew_slots(m.circuit, policy, [m])
                    backend.renew_slots(r.circuit, policy, [r])
                else:
                    memory.return_slot(m, policy)
                    backend.return_slot(r, policy)
            elif kind == "reset":
                got, want = (
                    backend.reset(op[1], current[op[1]]),
                    memory.reset(op[1], current[op[1]]),
                )
                assert [norm_transition(t) for t in got] == [norm_transition(t) for t in want]
            elif kind == "policy":
                current[op[1]] = op[2]
            elif kind == "advance":
                clock.advance(op[1] / 1000)
            elif kind == "clock_back":
                clock.set(clock.now_ms() - op[1])
            elif kind == "snapshot":
                name = op[1]
                got, want = (
                    backend.snapshot(name, current[name]),
                    memory.snapshot(name, current[name]),
                )
                assert norm_snapshot(got) == norm_snapshot(want), where
            elif kind == "ack":
                name = op[1]
                ids = [t.id for t in memory.outbox(name, 2)]
                memory.ack(name, ids)
                backend.ack(name, [t.id for t in backend.outbox(name, 2)])
            elif kind == "lose" and reference == "engine":  # a memory backend cannot lose one
                client.delete(*backend._keys(op[1]))
                # Only a local reset forgets a remembered rejection at once; the others take up
                # to POLICY_REFRESH_SECONDS, which the engine has no notion of.
                backend._open_cache.discard(op[1])
                memory.lose(op[1])
        # Everything observable agrees at the end, and so does the stored state itself.
        got = backend.snapshot_many(current)
        want = memory.snapshot_many(current)
        assert {k: norm_snapshot(v) for k, v in got.items()} == {
            k: norm_snapshot(v) for k, v in want.items()
        }
        for name in CIRCUITS:
            assert [norm_transition(t) for t in backend.outbox(name, OUTBOX_MAX)] == [
                norm_transition(t) for t in memory.outbox(name, OUTBOX_MAX)
            ]
        backend.flush()
        if reference == "engine":
            for name in CIRCUITS:
                assert stored_fields(client, backend, name) == memory.stored_state(name), name
        assert backend.health()["degraded"] is False
    finally:
        backend.close()
        client.close()


DIFFERENTIAL = hsettings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "immediate"])
@DIFFERENTIAL
@given(initial=initial_policies, ops=operations)
def test_differential_with_the_engine(redis_url, defer, initial, ops):
    """Redis vs. the engine applied one call at a time: tickets, transitions, snapshots, hash."""
    run_differential(redis_url, ops, defer, reference="engine", initial=initial)


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "immediate"])
@DIFFERENTIAL
@given(initial=initial_policies, ops=operations)
def test_differential_with_memory(redis_url, defer, initial, ops):
    run_differential(redis_url, ops, defer, reference="memory", initial=initial)


def test_differential_regression_flip_policy_with_deferred_successes(redis_url):
    """Successes deferred under one window width are counted in that width, as in memory."""
    short, long_ = Policy(window_seconds=1), Policy(window_seconds=4)
    ops = [("policy", "a", short), ("acquire", "a"), ("record", 0, True, 1), ("advance", 400)]
    ops += [("policy", "a", long_), ("acquire", "a"), ("record", 1, True, 1), ("snapshot", "a")]
    ops += [("record", 1, False, 1), ("snapshot", "a"), ("reset", "a"), ("snapshot", "a")]
    run_differential(redis_url, ops, defer=True)
