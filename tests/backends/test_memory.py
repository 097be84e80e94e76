"""``MemoryBackend``: the shared contract, plus threads, asyncio and its lock-free closed path."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from resilience import engine
from resilience.backends import memory
from resilience.backends.memory import MemoryBackend
from resilience.clock import ManualClock
from resilience.engine import CircuitState, Policy
from tests.backends.bulkhead_contract import BulkheadContract
from tests.backends.contract import BackendContract, fail, succeed
from tests.backends.history_contract import HistoryContract
from tests.backends.index_contract import NotClosedIndexContract
from tests.backends.sweep_contract import SweepContract


@pytest.fixture
def backend(clock):
    instance = MemoryBackend(clock=clock)
    yield instance
    instance.close()


class TestMemoryContract(
    BackendContract, BulkheadContract, NotClosedIndexContract, SweepContract, HistoryContract
):
    pass


def half_open(backend, clock, name, policy):
    fail(backend, name, policy, times=max(1, policy.failure_threshold))
    clock.advance(policy.recovery_timeout)


def test_options_for_other_backends_are_accepted():
    backend = MemoryBackend(url="redis://localhost:6379/0", prefix="x", socket_timeout=0.05)
    assert backend.health() == {"backend": "memory", "degraded": False, "circuits": 0}
    assert backend.acquire("a", Policy()).admitted


# --- threads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(20))
def test_64_threads_racing_for_4_trial_permits(backend, clock, round_):
    policy = Policy(failure_threshold=1, recovery_timeout=1, half_open_max_calls=4)
    name = f"race-{round_}"
    half_open(backend, clock, name, policy)
    barrier = threading.Barrier(64)
    tickets = []

    def contender():
        barrier.wait()
        tickets.append(backend.acquire(name, policy))

    threads = [threading.Thread(target=contender) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    admitted = [t for t in tickets if t.admitted]
    assert len(tickets) == 64
    assert len(admitted) == 4
    assert len({t.permit for t in admitted}) == 4
    assert sum(len(t.transitions) for t in tickets) == 1  # one thread half-opened the circuit
    assert backend.snapshot(name, policy)["half_open_permits"] == 4


def test_a_slow_call_does_not_block_other_threads(backend):
    policy = Policy()
    started, finish = threading.Event(), threading.Event()

    def slow_call():
        ticket = backend.acquire("shared", policy)
        started.set()
        finish.wait(30)  # the protected call is "running"
        backend.record(ticket, policy, True, 30_000)

    slow = threading.Thread(target=slow_call)
    slow.start()
    try:
        assert started.wait(10)
        done = threading.Event()

        def fast_calls():
            succeed(backend, "shared", policy, times=200)
            fail(backend, "shared", policy, times=2)
            backend.snapshot("shared", policy)
            done.set()

        threading.Thread(target=fast_calls).start()
        assert done.wait(10), "another thread was blocked by the running call"
        assert slow.is_alive()
    finally:
        finish.set()
        slow.join(10)
    assert backend.snapshot("shared", policy)["calls_in_window"] == 203


def test_concurrent_closed_calls_are_all_counted(backend):
    policy = Policy(failure_threshold=0, failure_rate_threshold=90)
    barrier = threading.Barrier(8)

    def worker(seed):
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(2_000):
            ticket = backend.acquire("busy", policy)
            backend.record(ticket, policy, rng.random() > 0.1, 1)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    rngs = [random.Random(i) for i in range(8)]
    expected_failures = sum(rng.random() <= 0.1 for rng in rngs for _ in range(2_000))
    snap = backend.snapshot("busy", policy)
    assert (snap["calls_in_window"], snap["failure_count"]) == (16_000, expected_failures)


def test_a_trip_under_concurrency_happens_once(backend):
    policy = Policy(failure_threshold=5, recovery_timeout=60)
    barrier = threading.Barrier(32)
    results = []

    def worker():
        barrier.wait()
        for _ in range(20):
            ticket = backend.acquire("storm", policy)
            if ticket.admitted:
                results.extend(backend.record(ticket, policy, False, 1))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [t.kind for t in results] == ["opened"]
    assert backend.outbox("storm") == results


# --- asyncio ------------------------------------------------------------------------------------


async def test_cancelled_tasks_leak_no_permit(backend, clock):
    policy = Policy(
        failure_threshold=1, recovery_timeout=1, half_open_max_calls=1000, success_threshold=1001
    )
    half_open(backend, clock, "async", policy)
    gate = asyncio.Event()

    async def protected_call():
        ticket = backend.acquire("async", policy)
        assert ticket.admitted
        try:
            await gate.wait()
        except asyncio.CancelledError:
            backend.release(ticket, policy)  # what the decorator does on cancellation
            raise
        return backend.record(ticket, policy, True, 1)

    tasks = [asyncio.create_task(protected_call()) for _ in range(1000)]
    await asyncio.sleep(0)
    assert backend.snapshot("async", policy)["half_open_permits"] == 1000
    for task in tasks[::2]:
        task.cancel()
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 500
    snap = backend.snapshot("async", policy)
    assert (snap["state"], snap["half_open_permits"], snap["half_open_successes"]) == (
        "half_open",
        0,
        500,
    )
    fresh = [backend.acquire("async", policy) for _ in range(1000)]
    assert all(t.admitted for t in fresh)


async def test_concurrent_tasks_share_the_closed_path(backend):
    policy = Policy(failure_rate_threshold=50)

    async def protected_call(i):
        ticket = backend.acquire("tasks", policy)
        await asyncio.sleep(0)
        backend.record(ticket, policy, i % 4 != 0, 1)

    await asyncio.gather(*(protected_call(i) for i in range(1000)))
    snap = backend.snapshot("tasks", policy)
    assert (snap["calls_in_window"], snap["failure_count"]) == (1000, 250)


# --- the lock-free closed path ------------------------------------------------------------------


def test_queued_successes_are_bounded(backend):
    policy = Policy()
    succeed(backend, "bounded", policy, times=memory.FLUSH_AT * 3 + 7)
    assert len(backend._circuits["bounded"].pending) < memory.FLUSH_AT
    assert backend.snapshot("bounded", policy)["calls_in_window"] == memory.FLUSH_AT * 3 + 7


def test_queued_successes_count_in_the_bucket_they_were_made_in(backend, clock):
    policy = Policy(window_seconds=10, failure_threshold=3)
    succeed(backend, "q", policy, times=10)  # queued in the first bucket
    fail(backend, "q", policy, times=2)
    clock.advance(9.5)
    succeed(backend, "q", policy, times=4)
    clock.advance(0.5)  # the first bucket leaves the window: only the 4 later calls remain
    fail(backend, "q", policy)
    snap = backend.snapshot("q", policy)
    assert (snap["calls_in_window"], snap["failure_count"]) == (5, 1)
    assert snap["consecutive_failures"] == 1  # the queued successes broke the earlier run


def test_queued_successes_expire_with_their_bucket(backend, clock):
    policy = Policy(window_seconds=10)
    succeed(backend, "old", policy, times=5)
    clock.advance(10)
    assert backend.snapshot("old", policy)["calls_in_window"] == 0


def test_a_success_that_could_trip_is_not_queued(backend):
    policy = Policy(failure_threshold=0, failure_rate_threshold=80, minimum_calls=10)
    fail(backend, "edge", policy, times=9)
    assert [t.kind for t in succeed(backend, "edge", policy)] == ["opened"]


def test_tickets_of_another_store_or_a_closed_one_are_not_counted(backend, clock):
    """Same circuit name, same generation, another epoch: a late result, also when queued."""
    policy = Policy(failure_threshold=1)
    other = MemoryBackend(clock=clock)
    foreign = other.acquire("svc", policy)
    own = backend.acquire("svc", policy)
    assert own.epoch != foreign.epoch and own.generation == foreign.generation
    assert backend.record(foreign, policy, False, 1) == []
    backend.record(own, policy, True, 1)  # arms the lock-free success path
    for _ in range(memory.FLUSH_AT + 1):
        backend.record(foreign, policy, True, 1)
    snap = backend.snapshot("svc", policy)
    assert (snap["state"], snap["calls_in_window"]) == ("closed", 1)
    backend.close()  # forgets every circuit: the next acquire starts a new epoch
    assert backend.acquire("svc", policy).epoch != own.epoch
    assert backend.record(own, policy, False, 1) == []
    assert backend.snapshot("svc", policy)["state"] == "closed"


@pytest.mark.parametrize("seed", range(30))
def test_the_backend_agrees_with_the_pure_engine(seed):
    """Random traffic through the backend and through ``engine`` directly: same snapshots."""
    rng = random.Random(seed)
    policy = Policy(
        failure_threshold=rng.choice([0, 3, 8]),
        failure_rate_threshold=rng.choice([0, 40, 70]),
        window_seconds=rng.choice([1, 10]),
        minimum_calls=rng.choice([1, 5, 20]),
        slow_call_ms=rng.choice([0, 50]),
        recovery_timeout=rng.choice([0.5, 2.0]),
        half_open_max_calls=rng.choice([1, 3]),
        success_threshold=rng.choice([1, 2]),
    )
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    state = CircuitState("x", epoch="")
    open_tickets = []
    for _ in range(600):
        roll = rng.random()
        if roll < 0.05:
            clock.advance(rng.choice([0.05, 0.3, 1.0, 3.0]))
        elif roll < 0.5 or not open_tickets:
            ours = backend.acquire("x", policy)
            theirs = engine.acquire(state, policy, clock.now_ms())
            assert (ours.admitted, ours.state, ours.permit) == (
                theirs.admitted,
                theirs.state,
                theirs.permit,
            )
            if ours.admitted:
                open_tickets.append((ours, theirs))
        else:
            ours, theirs = open_tickets.pop(rng.randrange(len(open_tickets)))
            success, duration = rng.random() < 0.7, rng.choice([1, 1, 1, 100])
            got = backend.record(ours, policy, success, duration)
            want = engine.record(state, policy, clock.now_ms(), theirs, success, duration)
            assert [t.kind for t in got] == [t.kind for t in want]
        if rng.random() < 0.1:  # not every step: a snapshot settles the queued successes
            assert_same_snapshot(backend, state, policy, clock)
    assert_same_snapshot(backend, state, policy, clock)


def assert_same_snapshot(backend, state, policy, clock):
    snap = backend.snapshot("x", policy)
    expected = engine.snapshot(state, policy, clock.now_ms())
    assert {**snap, "epoch": ""} == {**expected, "epoch": ""}


def test_a_circuit_takes_about_1_kb_of_heap():
    """tracemalloc over 5,000 circuits, each called twice (a success, then a failure). Before:
    2,614 B each, 1,520 of them two empty deques (the outbox, made before any transition, and
    the queue of lock-free successes)."""
    import gc
    import tracemalloc

    backend = MemoryBackend(clock=ManualClock())
    policy = Policy()
    names = [f"heap-{i}" for i in range(5000)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for name in names:
            succeed(backend, name, policy)
            fail(backend, name, policy)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_circuit = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / 5000
    assert per_circuit < 1300, per_circuit  # 1,202 B on CPython 3.11
    # A circuit that transitions gets its outbox then, and keeps its transitions.
    [opened] = fail(backend, names[0], Policy(failure_threshold=1))
    assert backend.outbox(names[0]) == [opened]
    backend.ack(names[0], [opened.id])
    assert backend.outbox(names[0]) == [] and backend.outbox("never-called") == []
