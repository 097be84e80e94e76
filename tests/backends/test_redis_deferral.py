"""Deferred successes: sent in the background, within POLICY_REFRESH_SECONDS, and under a
failure-rate rule exactly as the engine would count them (docs/redis.md)."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_py
from django.test import override_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from resilience import engine
from resilience.clock import ManualClock
from resilience.engine import CircuitState, Policy
from tests.backends.contract import fail, succeed
from tests.backends.redis_helpers import cost, make_backend, stored_fields
from tests.engine.test_properties import agrees_with_time_order, late_operations
from tests.support.waiting import wait_until


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
        wait_until(lambda: not elsewhere.snapshot("lazy", policy)["consecutive_failures"], 4, 0.02)
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

    monkeypatch.setattr(redis_local.common, "URGENT_BATCH_SECONDS", 30)  # no background send now
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

    monkeypatch.setattr(redis_local.common, "URGENT_BATCH_SECONDS", 30)  # no background send now
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

    monkeypatch.setattr(redis_local.common, "URGENT_BATCH_SECONDS", 30)  # sent by flush() below
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

    monkeypatch.setattr(redis_local.common, "URGENT_BATCH_SECONDS", 30)  # one batch, at flush()
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
