"""Invariants of the state machine under random sequences of operations (hypothesis)."""

from __future__ import annotations

import copy
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import engine
from resilience.engine import CircuitState, Policy, Ticket
from resilience.engine_types import RUN_TIMES

T0 = 1_700_000_000_000

policies = st.builds(
    Policy,
    mode=st.sampled_from(["enforced", "monitor"]),
    failure_threshold=st.integers(0, 4),
    failure_rate_threshold=st.sampled_from([0, 30, 50, 100]),
    window_seconds=st.sampled_from([1, 5, 60]),
    minimum_calls=st.integers(1, 6),
    slow_call_ms=st.sampled_from([0, 50, 20_000]),
    recovery_timeout=st.sampled_from([0.001, 0.5, 3.0]),
    backoff_multiplier=st.sampled_from([1.0, 2.0, 100.0]),
    max_recovery_timeout=st.sampled_from([3.0, 10.0]),
    half_open_max_calls=st.integers(1, 4),
    success_threshold=st.integers(1, 3),
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire")),
        st.tuples(st.just("record"), st.integers(0, 20), st.booleans(), st.integers(0, 100)),
        st.tuples(st.just("release"), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.sampled_from([1, 250, 999, 3_000, 31_000, 70_000])),
        st.tuples(st.just("reset")),
        st.tuples(st.just("window"), st.sampled_from([1, 5, 60])),
    ),
    max_size=80,
)


def run(policy, ops, check=None):
    """Apply ``ops``; calls ``check(state, policy, now, transitions)`` after each one."""
    state, now, tickets, transitions = CircuitState("svc", epoch="e"), T0, [], []
    for op in ops:
        new = []
        if op[0] == "acquire":
            ticket = engine.acquire(state, policy, now)
            tickets.append(ticket)
            new = list(ticket.transitions)
            if policy.mode == "enforced" and ticket.admitted:
                assert state.state != "open"
        elif op[0] == "record" and tickets:
            ticket = tickets[op[1] % len(tickets)]
            new = engine.record(state, policy, now, ticket, op[2], op[3])
        elif op[0] == "release" and tickets:
            engine.release(state, tickets[op[1] % len(tickets)])
        elif op[0] == "advance":
            now += op[1]
        elif op[0] == "reset":
            new = engine.reset(state, now)
        elif op[0] == "window":
            policy = dataclasses.replace(policy, window_seconds=op[1])
        transitions += new
        if check:
            check(state, policy, now, transitions)
    return state, transitions


def invariants(state, policy, now, transitions):
    # Exactly one transition per generation step, in order, with unique ids and chained states.
    assert [t.generation for t in transitions] == list(range(1, state.generation + 1))
    assert len({t.id for t in transitions}) == len(transitions)
    previous = "closed"
    for t in transitions:
        assert t.from_state == previous
        previous = t.to_state
    assert previous == state.state
    # Never more live permits than allowed, and permits only while half-open.
    live = [e for e in state.permits.values() if e > now]
    assert len(live) <= policy.half_open_max_calls
    if state.state != "half_open":
        assert state.permits == {}
    # The running totals always match the buckets.
    assert state.win_calls == sum(state.calls) >= state.win_failures == sum(state.failures) >= 0
    assert all(c >= f >= 0 for c, f in zip(state.calls, state.failures, strict=True))
    if state.state == "closed":
        assert state.trips == state.opened_at_ms == state.open_until_ms == 0
    else:
        assert state.trips >= 1 and state.opened_at_ms > 0
        duration = engine.open_duration_ms(policy, state.trips)
        assert state.open_until_ms - state.opened_at_ms == duration
    snap = engine.snapshot(state, policy, now)
    assert snap["retry_after"] >= 0
    assert snap["failure_count"] <= snap["calls_in_window"] <= state.win_calls
    assert CircuitState.from_fields("svc", state.to_fields()) == state


@settings(max_examples=300, deadline=None)
@given(policies, operations)
def test_invariants_hold_for_any_sequence(policy, ops):
    run(policy, ops, invariants)


@settings(max_examples=200, deadline=None)
@given(policies, operations, st.integers(0, 30), st.integers(0, 3_000))
def test_batched_successes_equal_one_by_one_records(policy, ops, count, later):
    """``record_successes`` is exactly a loop of ``record(..., True, 0)``."""
    state, _ = run(policy, ops)
    now = T0 + 10**6 + later
    tickets = [engine.acquire(state, policy, now) for _ in range(count)]
    stale = Ticket("svc", True, "closed", max(0, state.generation - 1), epoch=state.epoch)
    other_epoch = Ticket("svc", True, "closed", state.generation, epoch="another")
    tickets.insert(count // 2, stale)
    tickets.insert(count // 3, other_epoch)
    one_by_one, batched = copy.deepcopy(state), copy.deepcopy(state)
    expected = []
    for ticket in tickets:
        expected += engine.record(one_by_one, policy, now + later, ticket, True, 0)
    assert engine.record_successes(batched, policy, now + later, tickets) == expected
    assert batched == one_by_one


@settings(max_examples=200, deadline=None)
@given(policies, operations)
def test_an_expired_permit_never_blocks_a_new_trial(policy, ops):
    state, _ = run(policy, ops)
    if state.state != "half_open":
        return
    later = max(state.permits.values(), default=T0) + 1
    ticket = engine.acquire(state, policy, later)
    assert ticket.permit is not None


# --- successes that land late (deferred by other processes) -------------------------------------

PROCESSES = 3
# "call": process p makes a call at the current time; its success waits in p's queue, its
# failure lands at once (after p's queue, as the Redis backend sends it first); "land": p's
# queue lands; "advance": time passes (never backwards: "time order" needs one clock).
late_operations = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.integers(0, PROCESSES - 1), st.booleans()),
        st.tuples(st.just("call"), st.integers(0, PROCESSES - 1), st.just(False)),
        st.tuples(st.just("land"), st.integers(0, PROCESSES - 1)),
        st.tuples(st.just("advance"), st.sampled_from([0, 1, 7, 250, 2_000])),
    ),
    max_size=60,
)


def in_time_order(policy, landed):
    """The engine recording ``landed`` outcomes ``(at_ms, landing order, success)`` one by one
    in the order of their own times (ties: landing order), as if none had been late."""
    state = CircuitState("svc", epoch="e")
    for at, _, success in sorted(landed):
        ticket = engine.acquire(state, policy, at)
        if not ticket.admitted:
            break
        engine.record(state, policy, at, ticket, success, 0)
    return state


def agrees_with_time_order(state, policy, landed):
    """What a store that saw ``landed`` (in landing order) must hold: the trip exactly when
    the engine in time order trips, else the same run of consecutive failures."""
    want = in_time_order(policy, landed)
    assert (state.state, state.opened_at_ms) == (want.state, want.opened_at_ms), landed
    if state.state == "closed":
        assert state.consecutive_failures == want.consecutive_failures, landed


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 8), late_operations)
def test_late_successes_count_as_if_recorded_at_their_own_time(threshold, ops):
    """Successes of several processes landing late, in any interleaving with failures: the
    circuit trips exactly when (and only if) the engine recording every landed outcome in time
    order trips; a late success never erases the failures made after it. (Once open, the
    circuit stays open: a success landing after the trip cannot undo it.)"""
    policy = Policy(failure_threshold=threshold)
    state, now, landed = CircuitState("svc", epoch="e"), T0, []
    queues = [[] for _ in range(PROCESSES)]

    def land(ticket, at, success):
        engine.record(state, policy, at, ticket, success, 0)
        landed.append((at, len(landed), success))

    for op in ops:
        if op[0] == "advance":
            now += op[1]
            continue
        queue = queues[op[1]]
        if op[0] == "call":
            ticket = engine.acquire(state, policy, now)
            if not ticket.admitted:
                return  # open: what is still queued is late for the engine too
            if op[2]:
                queue.append((ticket, now))
                continue
        while queue:
            land(*queue.pop(0), True)
        if op[0] == "call":
            land(ticket, now, False)
        agrees_with_time_order(state, policy, landed)
        if state.state != "closed":
            return  # a trip is not undone by a success that lands after it


def test_a_late_success_ends_only_the_failures_dated_before_it():
    policy = Policy(failure_threshold=5)
    state = CircuitState("svc", epoch="e")
    success = engine.acquire(state, policy, T0)
    for at in (T0 + 10, T0 + 20, T0 + 30):
        engine.record(state, policy, at, engine.acquire(state, policy, at), False, 0)
    engine.record(state, policy, T0 + 5, success, True, 0)  # before the whole run: no change
    assert (state.consecutive_failures, state.run) == (3, [T0 + 10, T0 + 20, T0 + 30])
    engine.record(state, policy, T0 + 20, success, True, 0)  # after two of them
    assert (state.consecutive_failures, state.run) == (1, [T0 + 30])
    engine.record(state, policy, T0 + 30, success, True, 0)  # in order: the run is over
    assert (state.consecutive_failures, state.run) == (0, [])


def test_the_run_keeps_at_most_the_threshold_or_run_times_failure_times():
    for threshold, failures, kept in ((0, 40, 1), (1, 1, 1), (3, 3, 3), (10**6, 40, RUN_TIMES)):
        policy = Policy(failure_threshold=threshold)
        state = CircuitState("svc", epoch="e")
        for at in range(T0, T0 + failures):
            engine.record(state, policy, at, engine.acquire(state, policy, at), False, 0)
        assert state.run == list(range(T0 + failures - kept, T0 + failures)), threshold
        assert state.consecutive_failures == failures


def test_a_success_on_a_state_without_run_times_ends_the_run():
    """A hash stored before run times existed: a success sets the count to 0, as it did."""
    state = CircuitState("svc", epoch="e", consecutive_failures=3)
    engine.record(state, Policy(), T0, engine.acquire(state, Policy(), T0), True, 0)
    assert state.consecutive_failures == 0
