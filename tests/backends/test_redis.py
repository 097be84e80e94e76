"""RedisBackend against a private redis-server: contract, differential with memory, faults, cost."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
import redis as redis_py
from django.test import override_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from resilience import engine
from resilience.backends.base import OUTBOX_MAX
from resilience.backends.memory import MemoryBackend
from resilience.backends.redis import OPEN_CACHE_SHARE, RedisBackend, script_source
from resilience.backends.redis_fallback import FallbackTicket
from resilience.clock import ManualClock
from resilience.engine import CircuitState, Policy
from resilience.sanitize import describe_error, redact_url
from tests.backends.bulkhead_contract import BulkheadContract
from tests.backends.contract import BackendContract, fail, succeed
from tests.backends.index_contract import NotClosedIndexContract
from tests.engine.test_properties import agrees_with_time_order, late_operations


def make_backend(url, clock=None, **options):
    options.setdefault("prefix", f"t{uuid.uuid4().hex[:8]}")
    # Generous outside the fault tests: a loaded CI machine must not fake an outage.
    options.setdefault("socket_timeout", 2.0)
    return RedisBackend(clock=clock, url=url, **options)


@pytest.fixture
def two_processes(redis_url):
    """``here, elsewhere = two_processes(**options)``: backends of two processes sharing one
    prefix (``here`` built with ``options``, ``elsewhere`` recording at once); closed after."""
    made = []

    def pair(**options):
        here = make_backend(redis_url, **options)
        elsewhere = make_backend(redis_url, prefix=here.prefix, defer_successes=False)
        made.extend((here, elsewhere))
        return here, elsewhere

    yield pair
    for backend in made:
        backend.close()


@pytest.fixture
def redis_backend(redis_url, clock):
    backend = make_backend(redis_url, clock)
    yield backend
    backend.close()


class TestContract(BackendContract, BulkheadContract, NotClosedIndexContract):
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


def stored_fields(redis_client, backend, name):
    fields = redis_client.hgetall(backend._keys(name)[0])
    state = CircuitState.from_fields(name, fields)
    state.epoch = ""
    return state


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
            if kind in ("record", "release", "end") and tickets:
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


# --- Redis specifics ----------------------------------------------------------------------------


def test_keys_layout_plain_strings_and_hash_tag(redis_url, clock):
    backend = make_backend(redis_url, clock, prefix="myapp")
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    try:
        fail(backend, "payments-api", Policy(failure_threshold=1))
        assert sorted(client.keys("*")) == [
            "myapp:v1:not-closed",
            "myapp:v1:{payments-api}:outbox",
            "myapp:v1:{payments-api}:state",
        ]
        assert client.hgetall("myapp:v1:not-closed") == {"payments-api": "open"}
        fields = client.hgetall("myapp:v1:{payments-api}:state")
        assert fields["state"] == "open" and fields["generation"] == "1"
        assert all(v.lstrip("-").isdigit() or k in ("state", "epoch") for k, v in fields.items())
        [entry] = client.lrange("myapp:v1:{payments-api}:outbox", 0, -1)
        assert entry.startswith('{"at_ms":') and '"kind":"opened"' in entry
    finally:
        backend.close()
        client.close()


def test_outbox_json_is_byte_for_byte_the_engine_json(redis_backend, redis_url):
    policy = Policy(failure_threshold=0, failure_rate_threshold=33, minimum_calls=3)
    succeed(redis_backend, "rate", policy, times=2)
    [opened] = fail(redis_backend, "rate", policy)
    assert opened.failure_rate == 100 / 3
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    [raw] = client.lrange(redis_backend._keys("rate")[1], 0, -1)
    client.close()
    assert raw == opened.to_json()


def test_every_script_documents_keys_argv_and_return():
    for name in ("acquire", "record", "release", "reset", "snapshot_many", "ack"):
        header = script_source(name).split("\n\n", 1)[0]
        assert "KEYS[1]" in header and "Returns" in header, name
        assert "ARGV" in header, name


def test_server_clock_is_used_without_an_injected_clock(redis_url):
    backend = make_backend(redis_url)
    try:
        policy = Policy(failure_threshold=1, recovery_timeout=30)
        before = time.time_ns() // 1_000_000
        [opened] = fail(backend, "server-time", policy)
        after = time.time_ns() // 1_000_000
        assert before - 1000 <= opened.at_ms <= after + 1000
        ticket = backend.acquire("server-time", policy)
        assert not ticket.admitted and 28_000 < ticket.retry_after_ms <= 30_000
        snap = backend.snapshot("server-time", policy)
        assert snap["state"] == "open" and 28 < snap["retry_after"] <= 30
    finally:
        backend.close()


def test_policy_edits_never_lose_state(redis_backend):
    name = "edited"
    fail(redis_backend, name, Policy(failure_threshold=10), times=6)
    edited = Policy(failure_threshold=8, recovery_timeout=5, version=9)
    assert redis_backend.snapshot(name, edited)["consecutive_failures"] == 6
    assert [t.kind for t in fail(redis_backend, name, edited, times=2)] == ["opened"]


def test_script_flush_is_survived(redis_backend, redis_url):
    policy = Policy(failure_threshold=2)
    fail(redis_backend, "flushed", policy)
    client = redis_py.Redis.from_url(redis_url)
    client.script_flush()
    client.close()
    assert [t.kind for t in fail(redis_backend, "flushed", policy)] == ["opened"]
    assert redis_backend.snapshot("flushed", policy)["state"] == "open"
    assert redis_backend.health()["degraded"] is False


def test_evicted_keys_start_a_fresh_circuit_with_a_new_epoch(redis_backend, redis_url, clock):
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    [first] = fail(redis_backend, "evicted", policy)
    client = redis_py.Redis.from_url(redis_url)
    client.delete(*redis_backend._keys("evicted"))
    client.close()
    clock.advance(2)  # past the refresh bound of the local open cache
    ticket = redis_backend.acquire("evicted", policy)
    assert ticket.admitted and ticket.state == "closed" and ticket.generation == 0
    [second] = redis_backend.record(ticket, policy, False, 1)
    assert second.generation == 1 and second.id != first.id
    assert redis_backend.health()["degraded"] is False


def test_outbox_is_bounded_in_redis(redis_backend, redis_url):
    for _ in range(OUTBOX_MAX + 20):
        redis_backend.reset("bounded", Policy())
    client = redis_py.Redis.from_url(redis_url)
    assert client.llen(redis_backend._keys("bounded")[1]) == OUTBOX_MAX
    client.close()


def test_exactly_one_caller_sees_each_transition_across_threads(redis_url):
    backend = make_backend(redis_url, defer_successes=False)
    policy = Policy(failure_threshold=5, recovery_timeout=60)
    seen = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(20):
            seen.extend(fail(backend, "race", policy))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert [t.kind for t in seen] == ["opened"]
        assert backend.outbox("race") == seen
    finally:
        backend.close()


def test_open_cache_is_dropped_by_a_local_reset(redis_backend):
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    fail(redis_backend, "cached", policy)
    assert not redis_backend.acquire("cached", policy).admitted
    redis_backend.reset("cached", policy)
    assert redis_backend.acquire("cached", policy).admitted


def test_a_reset_elsewhere_is_honoured_within_policy_refresh_seconds(redis_url, clock, settings):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 0.5}
    here, elsewhere = make_backend(redis_url, clock), None
    elsewhere = make_backend(redis_url, clock, prefix=here.prefix)
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    try:
        fail(here, "remote-reset", policy)
        assert not here.acquire("remote-reset", policy).admitted
        elsewhere.reset("remote-reset", policy)
        horizon = 0.5 * OPEN_CACHE_SHARE  # re-asks Redis a little before the 0.5 s bound
        clock.advance(horizon - 0.001)
        assert not here.acquire("remote-reset", policy).admitted  # still cached
        clock.advance(0.001)
        assert here.acquire("remote-reset", policy).admitted
    finally:
        here.close()
        elsewhere.close()


def test_deferred_successes_reach_redis_within_policy_refresh_seconds(redis_url, settings):
    # Long enough that a loaded machine does not send it before the first look (the thread
    # sends what has waited half of it).
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 1.0}
    here = make_backend(redis_url)
    elsewhere = make_backend(redis_url, prefix=here.prefix)
    policy = Policy(failure_threshold=3)
    try:
        fail(here, "lazy", policy, times=2)
        # A deferred success is dated by this process's clock, failures by Redis TIME: apart by
        # a few ms, they cannot swap places through rounding (the success ends the run only if
        # dated after its failures, see docs/redis.md).
        time.sleep(0.01)
        succeed(here, "lazy", policy)
        assert here.health()["deferred_successes"] == 1
        assert here.snapshot("lazy", policy)["consecutive_failures"] == 0  # seen locally
        deadline = time.monotonic() + 4
        while elsewhere.snapshot("lazy", policy)["consecutive_failures"] and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)
        snap = elsewhere.snapshot("lazy", policy)
        assert (snap["consecutive_failures"], snap["calls_in_window"]) == (0, 3)
        assert here.health()["deferred_successes"] == 0
    finally:
        here.close()
        elsewhere.close()


RATED = Policy(failure_threshold=0, failure_rate_threshold=30, minimum_calls=3)


def background_transitions(backend):
    """What ``backend``'s background send of deferred successes hands to the events layer."""
    made = []
    backend.on_background_transitions = lambda name, transitions: made.extend(transitions)
    return made


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "immediate"])
def test_rate_rule_success_trips_on_failures_another_process_made_during_the_call(
    redis_proc, monkeypatch, defer
):
    """A success under a failure-rate rule is judged against the shared window when it lands.

    Deferred, it was admitted while the window held no failure, but another process failed
    during the call: it must still trip the circuit (in the background send, ~2 ms later).
    """
    here = make_backend(redis_proc.url, defer_successes=defer)
    elsewhere = make_backend(redis_proc.url, prefix=here.prefix)
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    made = background_transitions(here)
    try:
        assert succeed(here, "shared-rate", RATED) == []
        ticket = here.acquire("shared-rate", RATED)  # the window holds no failure yet
        assert fail(elsewhere, "shared-rate", RATED) == []  # 2 calls, 1 failure: below minimum
        opened = here.record(ticket, RATED, True, 1)  # 3 calls, 33 % >= 30 %
        assert wait_until(lambda: opened or made)
        assert [t.kind for t in opened + made] == ["opened"]
        # This process remembers it opened the circuit: rejected without asking Redis.
        trips, _ = cost(client, lambda: here.acquire("shared-rate", RATED), monkeypatch)
        assert trips == 0 and here.acquire("shared-rate", RATED).admitted is False
        assert [t.kind for t in elsewhere.outbox("shared-rate")] == ["opened"]
    finally:
        here.close()
        elsewhere.close()
        client.close()


def test_a_policy_edit_sends_the_queue_under_its_own_policy_first(two_processes, monkeypatch):
    """Queued successes are judged by the policy they were made under, a new one by its own."""
    from resilience.backends import redis_local

    monkeypatch.setattr(redis_local, "URGENT_BATCH_SECONDS", 30)  # no background send now
    before = Policy(failure_threshold=0, minimum_calls=3)  # no rate rule
    after = Policy(failure_threshold=0, failure_rate_threshold=25, minimum_calls=3, version=1)
    here, elsewhere = two_processes()
    made = background_transitions(here)
    succeed(here, "edited", before)
    here.flush()
    assert succeed(here, "edited", before) == []
    assert here.health()["deferred_successes"] == 1  # queued under ``before``
    ticket = here.acquire("edited", after)
    assert fail(elsewhere, "edited", after) == []
    opened = here.record(ticket, after, True, 1)  # 4 calls, 1 failure: 25 % >= 25 %
    here.flush()
    assert [t.kind for t in opened + made] == ["opened"]


def test_a_snapshot_holding_a_rate_rule_success_does_not_delay_it(two_processes, settings):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}  # a lazy send would wait 30 s
    here, elsewhere = two_processes()
    policy = Policy(failure_threshold=0, failure_rate_threshold=50, minimum_calls=10)
    succeed(here, "held", policy)
    here.flush()
    with here._deferred.held(["held"]):  # what a snapshot does around its read
        assert succeed(here, "held", policy) == []
        time.sleep(0.05)  # the background thread wakes and leaves it alone
    assert wait_until(lambda: elsewhere.snapshot("held", policy)["calls_in_window"] == 2, 2)


def test_a_failing_hand_off_does_not_stop_the_background_sends(redis_proc, caplog, monkeypatch):
    here = make_backend(redis_proc.url)
    elsewhere = make_backend(redis_proc.url, prefix=here.prefix, defer_successes=False)
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)

    def broken(name, transitions):
        raise RuntimeError("events layer unavailable")

    here.on_background_transitions = broken
    try:
        succeed(here, "sturdy", RATED)
        ticket = here.acquire("sturdy", RATED)
        fail(elsewhere, "sturdy", RATED)
        assert here.record(ticket, RATED, True, 1) == []  # trips in the background send
        assert wait_until(lambda: elsewhere.snapshot("sturdy", RATED)["state"] == "open")
        assert "was not handed on" in caplog.text
        assert [t.kind for t in elsewhere.outbox("sturdy")] == ["opened"]  # for the sweeper
        here.reset("sturdy", RATED)
        trips, _ = cost(client, lambda: succeed(here, "sturdy", RATED), monkeypatch)
        assert trips == 1  # the HMGET: the success was deferred ...
        assert wait_until(lambda: elsewhere.snapshot("sturdy", RATED)["calls_in_window"] == 1)
    finally:  # ... and the background thread, still alive, sent it
        here.close()
        elsewhere.close()
        client.close()


def test_rate_rule_success_trips_on_a_failure_of_another_thread_during_the_call(redis_backend):
    made = background_transitions(redis_backend)
    succeed(redis_backend, "threads-rate", RATED)
    mine = redis_backend.acquire("threads-rate", RATED)
    theirs = redis_backend.acquire("threads-rate", RATED)
    assert redis_backend.record(theirs, RATED, False, 1) == []
    opened = redis_backend.record(mine, RATED, True, 1)
    redis_backend.flush()
    assert [t.kind for t in opened + made] == ["opened"]


@pytest.mark.parametrize("then", ["reset", "failure"])
def test_a_deferred_rate_rule_success_that_would_trip_trips_before_the_next_operation(
    two_processes, monkeypatch, then
):
    """The next record or reset of this process applies its queued successes first, judging
    the rate rule as the success arrives: it trips there, and that operation comes after."""
    from resilience.backends import redis_local

    monkeypatch.setattr(redis_local, "URGENT_BATCH_SECONDS", 30)  # no background send now
    here, elsewhere = two_processes()
    made = background_transitions(here)
    succeed(here, "queued-rate", RATED)
    here.flush()
    ticket = here.acquire("queued-rate", RATED)
    fail(elsewhere, "queued-rate", RATED)
    assert here.record(ticket, RATED, True, 1) == []  # deferred: no failure seen
    assert here.health()["deferred_successes"] == 1
    if then == "reset":
        kinds = [t.kind for t in here.reset("queued-rate", RATED)]
        assert kinds == ["opened", "reset"]
        assert elsewhere.snapshot("queued-rate", RATED)["state"] == "closed"
    else:
        late = here.acquire("queued-rate", RATED)  # admitted: the success is not in yet
        assert [t.kind for t in here.record(late, RATED, False, 1)] == ["opened"]
        snap = elsewhere.snapshot("queued-rate", RATED)
        # The failure came after the trip: a late result, not counted (1 failure in 3).
        assert (snap["state"], snap["calls_in_window"]) == ("open", 3)
        assert round(snap["failure_rate"]) == 33
    assert made == []


@hsettings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@example(rate=50, minimum=4, before=[False, False], queued=1)  # 2 of 4: exactly the rate
@example(rate=30, minimum=3, before=[False], queued=3)  # the first queued one trips
@given(
    rate=st.one_of(st.sampled_from([20, 25, 50, 100]), st.integers(1, 100)),  # exact ties too
    minimum=st.integers(1, 12),
    before=st.lists(st.booleans(), max_size=12),
    queued=st.integers(1, 8),
)
def test_deferred_rate_rule_successes_trip_exactly_as_the_engine(
    redis_url, monkeypatch, rate, minimum, before, queued
):
    """``queued`` successes admitted on an empty window and deferred, while another process
    records ``before`` (True: success): the batch trips where the engine, recording them one
    by one after ``before``, trips — or not at all."""
    from resilience.backends import redis_local

    monkeypatch.setattr(redis_local, "URGENT_BATCH_SECONDS", 30)  # sent by flush() below
    policy = Policy(failure_threshold=0, failure_rate_threshold=rate, minimum_calls=minimum)
    clock = ManualClock()
    here = make_backend(redis_url, clock)
    elsewhere = make_backend(redis_url, clock, prefix=here.prefix, defer_successes=False)
    made = background_transitions(here)
    state = CircuitState("batch", epoch="")
    try:
        succeed(here, "batch", policy)
        want = engine.record(
            state, policy, clock.now_ms(), engine.acquire(state, policy, 0), True, 0
        )
        tickets = [here.acquire("batch", policy) for _ in range(queued)]
        ours = [engine.acquire(state, policy, clock.now_ms()) for _ in range(queued)]
        for ok in before:
            there = (succeed if ok else fail)(elsewhere, "batch", policy)
            ticket = engine.acquire(state, policy, clock.now_ms())
            want += engine.record(state, policy, clock.now_ms(), ticket, ok, 0)
            assert [t.kind for t in there] == [t.kind for t in want]
            if want:
                return  # ``before`` tripped it already: nothing left to compare
        got = []
        for theirs, mine in zip(tickets, ours, strict=True):
            got += here.record(theirs, policy, True, 0)
            want += engine.record(state, policy, clock.now_ms(), mine, True, 0)
        here.flush()
        assert [t.kind for t in got + made] == [t.kind for t in want]
        snap = elsewhere.snapshot("batch", policy)
        expected = engine.snapshot(state, policy, clock.now_ms())
        for key in ("state", "calls_in_window", "failure_count", "trips"):
            assert snap[key] == expected[key], key
    finally:
        here.close()
        elsewhere.close()


INTERLEAVED = st.lists(
    st.one_of(
        st.tuples(st.just("here")),
        st.tuples(st.just("there"), st.booleans()),
        st.tuples(st.just("advance"), st.sampled_from([1, 50, 99, 100, 250, 999, 1500])),
        st.tuples(st.just("back"), st.sampled_from([1, 100, 500])),
    ),
    max_size=30,
)


@hsettings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@example(
    rate=20,
    minimum=3,
    window=1,
    there_window=1,
    ops=[("there", False), ("advance", 1500), ("here",)],
)
@example(  # the trip is dated at the success that made it, not when the batch lands
    rate=33, minimum=3, window=1, there_window=1,
    ops=[("there", False), ("here",), ("advance", 500)],
)  # fmt: skip
@example(  # a pair after the trip is late
    rate=33, minimum=3, window=2, there_window=2,
    ops=[("there", False), ("here",), ("advance", 100), ("here",)],
)  # fmt: skip
@given(
    rate=st.sampled_from([1, 20, 25, 34, 50, 67, 100]),
    minimum=st.integers(1, 10),
    window=st.sampled_from([1, 2]),
    there_window=st.sampled_from([1, 1, 3]),
    ops=INTERLEAVED,
)
def test_queued_successes_in_several_pairs_land_exactly_as_the_engine(
    redis_url, monkeypatch, rate, minimum, window, there_window, ops
):
    """This process's successes, made at several times (clock moving both ways), queue up
    while another process records outcomes, under a window of its own width; then they land
    in one batch. Transitions and the stored hash match the engine recording everything in
    the order Redis saw it."""
    from resilience.backends import redis_local

    monkeypatch.setattr(redis_local, "URGENT_BATCH_SECONDS", 30)  # one batch, at flush()
    shared = {"failure_threshold": 0, "failure_rate_threshold": rate, "minimum_calls": minimum}
    shared |= {"recovery_timeout": 1.5, "backoff_multiplier": 2.0}
    policy = Policy(window_seconds=window, **shared)
    theirs = Policy(window_seconds=there_window, **shared)
    clock = ManualClock(start_ms=1_700_000_000_000)
    here = make_backend(redis_url, clock)
    elsewhere = make_backend(redis_url, clock, prefix=here.prefix, defer_successes=False)
    made = background_transitions(here)
    state = CircuitState("m", epoch="")
    try:
        succeed(elsewhere, "m", policy)  # the circuit's first call stores its epoch
        engine.record(state, policy, clock.now_ms(), engine.acquire(state, policy, 0), True, 0)
        tickets = [here.acquire("m", policy) for op in ops if op[0] == "here"]
        mine = engine.acquire(state, policy, clock.now_ms())
        times = []
        for op in ops:
            if op[0] == "here":
                assert here.record(tickets[len(times)], policy, True, 0) == []
                times.append(clock.now_ms())
            elif op[0] == "there":
                got = (succeed if op[1] else fail)(elsewhere, "m", theirs)
                ticket = engine.acquire(state, theirs, clock.now_ms())
                want = list(ticket.transitions)
                if ticket.admitted:
                    want += engine.record(state, theirs, clock.now_ms(), ticket, op[1], 0)
                assert [t.kind for t in got] == [t.kind for t in want]
            elif op[0] == "advance":
                clock.advance(op[1] / 1000)
            else:
                clock.set(clock.now_ms() - op[1])
        assert here.health()["deferred_successes"] == len(times)
        here.flush()
        want = [t for at in times for t in engine.record(state, policy, at, mine, True, 0)]
        fields = ("kind", "at_ms", "retry_after_ms", "failure_count", "failure_rate")
        assert [[getattr(t, f) for f in fields] for t in made] == [
            [getattr(t, f) for f in fields] for t in want
        ]
        stored = stored_fields(here.client, here, "m")
        for name in ("state", "trips", "opened_at_ms", "open_until_ms", "win_calls",
                     "win_failures", "win_head", "bucket_ms", "consecutive_failures",
                     "generation", "calls", "failures"):  # fmt: skip
            assert getattr(stored, name) == getattr(state, name), name
    finally:
        here.close()
        elsewhere.close()


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@example(  # issue 12: A succeeds, B fails 4 times, A's success lands, B's 5th failure trips
    threshold=5,
    ops=[("call", 0, True), ("advance", 7), *[("call", 1, False)] * 4, ("land", 0),
         ("call", 1, False)],
)  # fmt: skip
@given(threshold=st.integers(1, 6), ops=late_operations)
def test_late_deferred_successes_of_several_processes_count_as_in_time_order(
    redis_url, threshold, ops
):
    """Three processes' deferred successes land late, interleaved with failures (sent at once)
    and arbitrary delays: after every landing the stored circuit is what the engine recording
    every landed outcome in time order holds (the trip exactly then, or the same run)."""
    policy = Policy(failure_threshold=threshold)
    clock = ManualClock()
    first = make_backend(redis_url, clock)
    processes = [first] + [make_backend(redis_url, clock, prefix=first.prefix) for _ in "ab"]
    queues = [[] for _ in processes]  # the times of each process's queued successes
    landed = []
    try:
        # No background send (POLICY_REFRESH_SECONDS): successes land by "land" or a failure.
        with override_settings(RESILIENCE={"POLICY_REFRESH_SECONDS": 3600}):
            for op in ops:
                if op[0] == "advance":
                    clock.advance(op[1] / 1000)
                    continue
                backend, queue = processes[op[1]], queues[op[1]]
                if op[0] == "call":
                    ticket = backend.acquire("late", policy)
                    if not ticket.admitted:
                        return
                    if op[2]:
                        assert backend.record(ticket, policy, True, 1) == []
                        queue.append(clock.now_ms())
                        assert backend.health()["deferred_successes"] == len(queue)
                        continue
                    backend.record(ticket, policy, False, 1)  # its queue goes first
                else:
                    backend.flush()
                landed += [(at, len(landed) + i, True) for i, at in enumerate(queue)]
                queue.clear()
                if op[0] == "call":
                    landed.append((clock.now_ms(), len(landed), False))
                stored = stored_fields(first.client, first, "late")
                agrees_with_time_order(stored, policy, landed)
                if stored.state != "closed":
                    return  # a trip is not undone by a success that lands after it
    finally:
        for backend in processes:
            backend.close()


def test_rate_rule_successes_are_sent_at_once_in_the_background(two_processes, settings):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}  # the lazy send would wait 30 s
    here, elsewhere = two_processes()
    policy = Policy(failure_threshold=0, failure_rate_threshold=50, minimum_calls=10)
    assert succeed(here, "rated", policy, times=3) == []
    assert wait_until(lambda: elsewhere.snapshot("rated", policy)["calls_in_window"] == 3)
    assert here.health()["deferred_successes"] == 0


def test_rate_rule_success_after_failures_is_recorded_at_once_and_may_trip(redis_backend):
    """With failures in the window a success can trip (it reaches minimum_calls): not deferred."""
    policy = Policy(failure_threshold=0, failure_rate_threshold=50, minimum_calls=4)
    succeed(redis_backend, "edge", policy)
    fail(redis_backend, "edge", policy, times=2)
    assert [t.kind for t in succeed(redis_backend, "edge", policy)] == ["opened"]
    assert redis_backend.health()["deferred_successes"] == 0


def test_flush_returns_once_a_background_send_under_way_has_landed():
    """flush() means "in Redis now", also for what the background thread was sending.

    (Before, flush_all() skipped a circuit the background thread was sending and returned at
    once: a read right after flush() could miss those successes.)
    """
    from resilience.backends.redis_local import Deferred

    started, release, sent = threading.Event(), threading.Event(), []

    def send(name, pending):
        started.set()
        release.wait(5)
        sent.append(name)

    deferred = Deferred(send, lambda: 0.02)  # the background thread sends after ~10 ms
    ticket = engine.Ticket("c", True, "closed", 0, epoch="e")
    assert deferred.add(ticket, Policy(), 1)
    try:
        assert started.wait(5)  # the background thread has taken it and is sending
        threading.Timer(0.2, release.set).start()
        deferred.flush_all()
        assert sent == ["c"]
    finally:
        release.set()
        deferred.close()


def test_a_success_after_close_is_recorded_not_stranded(two_processes):
    """A call that outlives its backend (settings changed meanwhile) still counts."""
    here, elsewhere = two_processes()
    policy = Policy()
    succeed(here, "late", policy)
    ticket = here.acquire("late", policy)
    here.close()
    assert here.record(ticket, policy, True, 1) == []
    assert here.health()["deferred_successes"] == 0
    assert elsewhere.snapshot("late", policy)["calls_in_window"] == 2


def test_close_sends_deferred_successes(redis_url):
    here = make_backend(redis_url)
    elsewhere = make_backend(redis_url, prefix=here.prefix)
    succeed(here, "closing", Policy(), times=3)
    here.close()
    assert elsewhere.snapshot("closing", Policy())["calls_in_window"] == 3
    elsewhere.close()


# --- configuration ------------------------------------------------------------------------------


def test_acl_user_and_password_in_the_url(redis_proc):
    admin = redis_py.Redis.from_url(redis_proc.url)
    # Exactly the rules docs/redis.md recommends.
    admin.execute_command(
        "ACL", "SETUSER", "breaker", "on", ">s3cr3t-pw", "~resil:*",
        "+@scripting", "+@hash", "+@list", "+@sortedset", "+ping", "+time", "+scan",
    )  # fmt: skip
    admin.close()
    url = f"redis://breaker:s3cr3t-pw@127.0.0.1:{redis_proc.port}/0"
    clock = ManualClock()
    backend = make_backend(url, clock, prefix="resil")
    try:
        policy = Policy(failure_threshold=1, recovery_timeout=1)
        succeed(backend, "acl", policy, times=2)
        assert [t.kind for t in fail(backend, "acl", policy)] == ["opened"]
        assert backend.not_closed() == {"acl": "open"}  # the index built by SCAN
        clock.advance(1)
        trial = backend.acquire("acl", policy)
        backend.release(trial, policy)
        [reset] = backend.reset("acl", policy)
        assert len(backend.outbox("acl")) == 3
        backend.ack("acl", [reset.id])
        assert backend.snapshot_many({"acl": policy})["acl"]["state"] == "closed"
        health = backend.health()
        assert health["degraded"] is False, health["reason"]
        assert "s3cr3t-pw" not in str(health)
    finally:
        backend.close()
    wrong = make_backend(url.replace("s3cr3t-pw", "wrong-pw"), ManualClock(), prefix="resil")
    try:
        assert wrong.acquire("acl", Policy()).admitted  # local fallback, no exception
        health = wrong.health()
        assert health["degraded"] and "wrong-pw" not in str(health)
    finally:
        wrong.close()


def test_missing_redis_py_is_an_improperly_configured_with_the_pip_command():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from django.core.exceptions import ImproperlyConfigured\n"
        "try:\n    import resilience.backends.redis\n"
        "except ImproperlyConfigured as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install django-resilience[redis]" in out.stdout, out.stderr


def test_unknown_options_fail_at_construction():
    with pytest.raises(TypeError):
        RedisBackend(url="redis://127.0.0.1:1/0", no_such_option=1)


@pytest.mark.parametrize("prefix", ["", "a{b", "x}"])
def test_prefix_must_not_break_the_hash_tag(prefix):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        RedisBackend(url="redis://127.0.0.1:1/0", prefix=prefix)


def test_redaction():
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:[redacted]@h:1/0"
    assert redact_url("rediss://h:1/0") == "rediss://h:1/0"
    assert "pw" not in describe_error(ValueError("boom redis://u:pw@h:1/0"))
    assert "hunter2" not in describe_error(ValueError("x hunter2 y"), secrets=("hunter2",))


def test_get_backend_builds_the_redis_backend(settings, redis_url):
    from resilience.backends import get_backend

    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "prefix": "configured", "socket_timeout": 0.2},
    }
    backend = get_backend()
    assert isinstance(backend, RedisBackend) and backend.socket_timeout == 0.2
    assert backend.acquire("via-settings", Policy()).admitted


# --- faults -------------------------------------------------------------------------------------


def fault_backend(redis_proc, **options):
    options.setdefault("reprobe_interval", 0.2)
    options.setdefault("socket_timeout", 0.25)
    return make_backend(redis_proc.url, ManualClock(), **options)


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("mode", ["local", "allow", "deny"])
def test_server_down_never_raises_and_follows_on_backend_error(redis_proc, settings, mode):
    settings.RESILIENCE = {"ON_BACKEND_ERROR": mode}
    backend = fault_backend(redis_proc, reprobe_interval=60)
    policy = Policy(failure_threshold=2, recovery_timeout=30)
    try:
        assert backend.acquire("down", policy).admitted
        redis_proc.stop()
        tickets, results = [], []
        for _ in range(3):
            tickets.append(backend.acquire("down", policy))
            results.append(backend.record(tickets[-1], policy, False, 1))
        health = backend.health()
        assert health["degraded"] and health["reason"]
        assert backend.snapshot("down", policy)["state"] in ("closed", "open")
        assert len(backend.reset("down", policy)) == 1
        backend.outbox("down")
        backend.ack("down", ["x"])
        if mode == "local":  # the per-process state machine took over
            assert [t.admitted for t in tickets] == [True, True, False]
            assert [t.kind for r in results for t in r] == ["opened"]
        elif mode == "allow":
            assert all(t.admitted for t in tickets) and results == [[], [], []]
        else:
            assert not any(t.admitted for t in tickets)
            assert {t.retry_after_ms for t in tickets} == {60_000}
    finally:
        backend.close()


def test_hung_server_costs_one_socket_timeout_then_nothing(redis_proc):
    backend = fault_backend(redis_proc, socket_timeout=0.1, reprobe_interval=60)
    policy = Policy()
    try:
        assert backend.acquire("hung", policy).admitted  # a pooled connection exists
        redis_proc.pause()
        start = time.monotonic()
        ticket = backend.acquire("hung", policy)
        first = time.monotonic() - start
        assert ticket.admitted and isinstance(ticket, FallbackTicket)
        assert 0.09 <= first < 0.1 + 1.0, first  # one socket_timeout, plus a loaded machine
        start = time.monotonic()
        for _ in range(200):
            backend.record(backend.acquire("hung", policy), policy, False, 1)
        assert time.monotonic() - start < 2.0  # not 200 timeouts: no Redis traffic while degraded
    finally:
        redis_proc.resume()
        backend.close()


def test_hung_server_on_a_new_connection_costs_one_timeout(redis_proc):
    backend = fault_backend(redis_proc, socket_timeout=0.1, reprobe_interval=60)
    try:
        redis_proc.pause()
        start = time.monotonic()
        assert backend.acquire("hung-new", Policy()).admitted
        assert time.monotonic() - start < 0.1 * 2 + 0.25
    finally:
        redis_proc.resume()
        backend.close()


def test_recovery_after_restart_via_reprobe(redis_proc):
    backend = fault_backend(redis_proc)
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    try:
        redis_proc.stop()
        local = backend.acquire("restart", policy)
        assert isinstance(local, FallbackTicket)
        redis_proc.start()
        assert wait_until(
            lambda: (backend.acquire("restart", policy), backend)[1].health()["degraded"] is False
        )
        shared = backend.acquire("restart", policy)
        assert type(shared) is not FallbackTicket
        # The local ticket still reports to the local state it came from.
        [opened] = backend.record(local, policy, False, 1)
        assert opened.kind == "opened"
        assert backend.snapshot("restart", policy)["state"] == "closed"  # Redis untouched
        assert backend.outbox("restart") == [opened]  # kept for the drain
        backend.ack("restart", [opened.id])
        assert backend.outbox("restart") == []
    finally:
        backend.close()


def test_a_restart_between_calls_is_not_an_outage(redis_proc):
    """Pooled connections to the old server are detected as closed and replaced."""
    backend = fault_backend(redis_proc, reprobe_interval=60)
    try:
        assert backend.acquire("restarted", Policy()).admitted
        redis_proc.restart()
        ticket = backend.acquire("restarted", Policy())
        assert type(ticket) is not FallbackTicket
        assert backend.health()["degraded"] is False
    finally:
        backend.close()


def test_hung_then_resumed_server_recovers(redis_proc):
    backend = fault_backend(redis_proc, socket_timeout=0.05)
    policy = Policy(failure_threshold=1)
    try:
        backend.acquire("paused", policy)
        redis_proc.pause()
        assert backend.acquire("paused", policy).admitted
        assert backend.health()["degraded"]
        time.sleep(0.3)
        assert backend.acquire("paused", policy).admitted  # a failing probe in the background
        redis_proc.resume()
        assert wait_until(
            lambda: (backend.acquire("paused", policy), backend.health())[1]["degraded"] is False
        )
        assert [t.kind for t in fail(backend, "paused", policy)] == ["opened"]
    finally:
        backend.close()


def test_readonly_replica_is_a_backend_error(redis_proc):
    backend = fault_backend(redis_proc, reprobe_interval=60)
    client = redis_py.Redis.from_url(redis_proc.url)
    try:
        backend.acquire("ro", Policy(failure_threshold=1))  # the first acquire stores the epoch
        # A replica of a dead master: writes fail with READONLY, reads work.
        client.replicaof("127.0.0.1", 1)
        ticket = backend.acquire("ro", Policy(failure_threshold=1))
        assert ticket.admitted and type(ticket) is not FallbackTicket  # closed acquire: a read
        assert backend.record(ticket, Policy(failure_threshold=1), False, 1) == []
        health = backend.health()
        assert health["degraded"] and "READONLY" in health["reason"].upper()
    finally:
        client.replicaof("NO", "ONE")
        client.close()
        backend.close()


def test_while_degraded_only_the_reprobe_reaches_redis(redis_proc):
    """A server that answers PING but refuses writes: probes at most every interval, no calls."""
    backend = fault_backend(redis_proc, reprobe_interval=0.25)
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_threshold=1000)
    try:
        fail(backend, "probed", policy)  # both scripts loaded: no NOSCRIPT round trips below
        client.replicaof("127.0.0.1", 1)
        before = command_calls(client)
        start = time.monotonic()
        calls = 0
        while time.monotonic() - start < 1.5:
            backend.record(backend.acquire("probed", policy), policy, False, 1)
            calls += 1
        elapsed = time.monotonic() - start
        after = command_calls(client)
        pings = after.get("ping", 0) - before.get("ping", 0)
        scripts = after.get("evalsha", 0) - before.get("evalsha", 0)
        assert calls > 1000
        # Each probe answers (PING works on a replica), the next record fails again: one
        # round of (probe, acquire, record) per interval at most.
        assert 1 <= pings <= elapsed / 0.25 + 1
        assert scripts <= 2 * (pings + 1)
    finally:
        client.replicaof("NO", "ONE")
        client.close()
        backend.close()


def test_backend_errors_are_logged_once_per_interval(redis_proc, caplog):
    backend = fault_backend(redis_proc, reprobe_interval=0.05, log_interval=60)
    url_with_password = redis_proc.url.replace("redis://", "redis://:topsecret@")
    secret = make_backend(url_with_password, ManualClock(), reprobe_interval=60)
    redis_proc.stop()
    try:
        with caplog.at_level(logging.INFO, logger="resilience"):
            for _ in range(20):
                backend.acquire("logged", Policy())
                time.sleep(0.01)
            secret.acquire("logged", Policy())
        records = [r for r in caplog.records if r.name == "resilience"]
        assert len([r for r in records if "127.0.0.1" in r.getMessage()]) == 2
        assert not any("topsecret" in r.getMessage() for r in records)
    finally:
        backend.close()
        secret.close()


# --- cost: round trips and commands per call ------------------------------------------------------


def command_calls(client):
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def cost(client, action, monkeypatch):
    """``(round trips, {command: calls})`` of ``action``: the requests this thread sent through
    redis-py (a pipeline is one), and what the server executed (INFO commandstats, so the
    commands a script runs count too)."""
    from redis.connection import AbstractConnection

    me, sent = threading.get_ident(), []
    original = AbstractConnection.send_packed_command

    def counting(self, *args, **kwargs):
        if threading.get_ident() == me:
            sent.append(args)
        return original(self, *args, **kwargs)

    before = command_calls(client)
    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counting)
        action()
    after = command_calls(client)
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    diff.pop("info", None)
    return len(sent), diff


def script_sizes(monkeypatch):
    """The number of keys of every script the backends of this test run (appended to)."""
    from redis.commands.core import Script

    sizes, original = [], Script.__call__

    def counting(self, keys=(), args=(), client=None):
        sizes.append(len(keys))
        return original(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(Script, "__call__", counting)
    return sizes


def test_not_closed_index_is_rebuilt_a_page_per_script_when_lost(redis_proc, monkeypatch):
    from resilience.backends.redis_reads import PAGE

    clock = ManualClock()
    backend = make_backend(redis_proc.url, clock)
    neighbour = make_backend(redis_proc.url, clock)  # another prefix: not in this index
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_threshold=1, recovery_timeout=5)
    policies = {f"svc-{i:03d}": policy for i in range(2 * PAGE + 30)}
    try:
        for i, name in enumerate(policies):
            (fail if i % 3 == 0 else succeed)(backend, name, policy)
        fail(neighbour, "elsewhere", policy)
        expected = {name: "open" for i, name in enumerate(policies) if i % 3 == 0}
        assert backend.not_closed() == expected
        sizes = script_sizes(monkeypatch)
        before = command_calls(client)
        assert client.delete(backend._index_key) == 1  # lost (evicted, deleted by hand)
        assert backend.not_closed() == expected  # rebuilt from the circuits
        assert sizes == [PAGE + 1, PAGE + 1, 31]  # one script per page of circuits
        assert command_calls(client)["hget"] - before.get("hget", 0) == len(policies)
        sizes.clear()
        assert backend.not_closed() == expected  # complete again: one HGETALL
        assert sizes == []
        # A snapshot of every circuit runs one script per page, never one over the table.
        assert len(backend.snapshot_many(policies)) == len(policies)
        assert sizes == [2 * PAGE, 2 * PAGE, 60]
        # A circuit opened while the index is gone is found by the rebuild too.
        client.delete(backend._index_key)
        fail(backend, "svc-001", policy)
        assert backend.not_closed() == {**expected, "svc-001": "open"}
        assert neighbour.not_closed() == {"elsewhere": "open"}
    finally:
        backend.close()
        neighbour.close()
        client.close()


def per_call(calls, **commands):
    return {name: n * calls for name, n in commands.items()}


def test_commands_per_call(redis_proc, settings, monkeypatch):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}  # no background flush meanwhile
    clock = ManualClock()
    backend = make_backend(redis_proc.url, clock)
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    ok, bad = Policy(), Policy(failure_threshold=1000)
    tripping = Policy(failure_threshold=3, recovery_timeout=60)
    try:
        # Connection set up, every script loaded (EVALSHA, NOSCRIPT, SCRIPT LOAD) and each
        # circuit's first call (which stores its epoch) made first.
        succeed(backend, "warm", ok, times=2)
        fail(backend, "warm", ok)
        backend.snapshot_many({"warm": ok, "warm2": ok})  # one circuit needs no script
        succeed(backend, "ok", ok)
        fail(backend, "bad", bad)
        backend.flush()
        calls = 100
        # A closed success: one HMGET; the success waits to ride along with a later script.
        assert cost(client, lambda: succeed(backend, "ok", ok, times=calls), monkeypatch) == (
            calls,
            per_call(calls, hmget=1),
        )
        # A failure: the HMGET, then the record script (the time, one read, one write).
        assert cost(client, lambda: fail(backend, "bad", bad, times=calls), monkeypatch) == (
            2 * calls,
            per_call(calls, hmget=2, evalsha=1, hset=1),
        )
        # Opened by this process: later calls are answered from its cache.
        fail(backend, "open", tripping, times=3)
        assert cost(client, lambda: fail(backend, "open", tripping, times=calls), monkeypatch) == (
            0,
            {},
        )
        # The deferred successes: one script call, which applies them all.
        assert cost(client, backend.flush, monkeypatch) == (
            1,
            {"evalsha": 1, "hmget": 1, "hset": 1},
        )
        immediate = make_backend(redis_proc.url, clock, defer_successes=False)
        succeed(immediate, "warm", ok)
        fail(immediate, "warm", ok)
        succeed(immediate, "ok2", ok)
        assert cost(client, lambda: succeed(immediate, "ok2", ok, times=calls), monkeypatch) == (
            2 * calls,
            per_call(calls, hmget=2, evalsha=1, hset=1),
        )
        immediate.close()
        policies = {f"page-{i}": ok for i in range(100)}
        assert cost(client, lambda: backend.snapshot_many(policies), monkeypatch) == (
            1,
            {"evalsha": 1, "time": 1, "hgetall": 100},
        )
        assert cost(client, lambda: backend.snapshot("ok", ok), monkeypatch) == (
            1,
            {"hgetall": 1},  # and TIME in the same round trip without an injected clock
        )
    finally:
        backend.close()
        client.close()


def test_rate_rule_ok_path_costs_one_round_trip(redis_proc, settings, monkeypatch):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}
    backend = make_backend(redis_proc.url, ManualClock())
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_rate_threshold=50)
    try:
        succeed(backend, "rated", policy)  # the circuit's first call stores its epoch
        trips, _ = cost(client, lambda: succeed(backend, "rated", policy, times=50), monkeypatch)
        assert trips == 50  # the HMGETs; the background thread sends the successes
        backend.flush()
        assert backend.snapshot("rated", policy)["calls_in_window"] == 51
    finally:
        backend.close()
        client.close()


def test_rate_rule_ok_path_costs_one_round_trip_with_a_cap_too(redis_proc, settings, monkeypatch):
    # A capped (tracked) circuit admits through the acquire script, not the HMGET that tells an
    # untracked one whether its window holds failures: its successes under a rate rule were
    # then never deferred, and each cost the caller a record script of its own (2 round trips).
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}
    backend = make_backend(redis_proc.url, ManualClock())
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_rate_threshold=50, max_concurrent_calls=3)

    def calls(times):
        for _ in range(times):
            ticket = backend.acquire("rated", policy)
            assert ticket.admitted
            backend.record(ticket, policy, True, 1)
            backend.return_slot(ticket, policy)

    try:
        calls(1)  # the circuit's first call stores its epoch
        trips, _ = cost(client, lambda: calls(50), monkeypatch)
        assert trips == 50  # the acquire scripts; the background thread sends the successes
        backend.flush()
        snap = backend.snapshot("rated", policy)
        assert (snap["calls_in_window"], snap["in_flight"]) == (51, 0)
    finally:
        backend.close()
        client.close()


# --- Sentinel -----------------------------------------------------------------------------------


def test_sentinel_discovers_the_master(redis_proc):
    from tests.support.redisproc import RedisProcess

    with RedisProcess(sentinel_for=("breakers", redis_proc)) as sentinel:
        backend = RedisBackend(
            clock=ManualClock(),
            url="redis://ignored-host/0",
            prefix="sentinel",
            socket_timeout=2.0,
            sentinels=[(sentinel.host, sentinel.port)],
            service_name="breakers",
        )
        try:
            assert "sentinel:breakers@127.0.0.1" in backend.health()["location"]
            [opened] = fail(backend, "via-sentinel", Policy(failure_threshold=1))
            assert opened.kind == "opened"
            direct = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
            assert direct.hget("sentinel:v1:{via-sentinel}:state", "state") == "open"
            direct.close()
            assert backend.health()["degraded"] is False
        finally:
            backend.close()


def test_sentinel_unreachable_degrades_without_raising(settings):
    settings.RESILIENCE = {"ON_BACKEND_ERROR": "deny"}
    from tests.support.redisproc import free_port

    backend = RedisBackend(
        clock=ManualClock(),
        sentinels=[f"127.0.0.1:{free_port()}"],
        service_name="nowhere",
        reprobe_interval=30,
    )
    try:
        ticket = backend.acquire("no-sentinel", Policy())
        assert not ticket.admitted and ticket.retry_after_ms == 30_000
        assert backend.health()["degraded"]
    finally:
        backend.close()


# --- Cluster ------------------------------------------------------------------------------------


@pytest.fixture
def redis_cluster():
    """Three private masters joined into a Redis Cluster with redis-cli."""
    import shutil
    import subprocess

    from tests.support.redisproc import RedisProcess

    cli = shutil.which("redis-cli")
    if not cli:
        pytest.skip("redis-cli is not installed")
    cluster_args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
    nodes = [RedisProcess(extra_args=cluster_args) for _ in range(3)]
    try:
        for node in nodes:
            node.start()
        subprocess.run(  # noqa: S603
            [cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes]]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        # Every node must have learnt the whole slot map by gossip, not just the first one.
        for node in nodes:
            client = redis_py.Redis.from_url(node.url, decode_responses=True)
            assert wait_until(lambda c=client: c.cluster("info")["cluster_state"] == "ok", 30)
            client.close()
        yield nodes
    finally:
        for node in nodes:
            node.close()


@pytest.mark.slow
def test_cluster_keeps_each_circuit_in_one_slot(redis_cluster):
    from redis.cluster import RedisCluster

    url = redis_cluster[0].url
    backend = RedisBackend(clock=ManualClock(), url=url, cluster=True, socket_timeout=2.0)
    policies = {f"svc-{i}": Policy(failure_threshold=1) for i in range(30)}
    try:
        for name, policy in policies.items():
            assert [t.kind for t in fail(backend, name, policy)] == ["opened"]
        assert {s["state"] for s in backend.snapshot_many(policies).values()} == {"open"}
        client = RedisCluster.from_url(url)
        slots = {client.keyslot(key) for name in policies for key in backend._keys(name)}
        assert len(slots) > 3  # the page really spans the cluster
        for name in policies:
            state, outbox, bulkhead = backend._keys(name)  # no index key in Cluster
            assert client.keyslot(state) == client.keyslot(outbox) == client.keyslot(bulkhead)
        # The not-closed index lives in another slot than the circuits: the client that
        # receives a transition updates it; a lost index is rebuilt node by node.
        assert backend.not_closed() == {name: "open" for name in policies}
        [reset] = backend.reset("svc-3", policies["svc-3"])
        expected = {name: "open" for name in policies if name != "svc-3"}
        assert backend.not_closed() == expected
        client.delete(backend._index_key)
        client.close()
        assert backend.not_closed() == expected
        assert [t.kind for t in backend.outbox("svc-3")] == ["opened", "reset"]
        backend.ack("svc-3", [reset.id])
        assert [t.kind for t in backend.outbox("svc-3")] == ["opened"]
        assert backend.health()["degraded"] is False
    finally:
        backend.close()
