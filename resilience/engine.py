"""The pure circuit-breaker state machine: acquire, record, release, reset, snapshot."""

from __future__ import annotations

from typing import Any

from resilience.engine_types import (
    BUCKETS,
    BULKHEAD_FULL,
    CLOSED,
    HALF_OPEN,
    MODES,
    MONITOR,
    OPEN,
    CircuitState,
    Policy,
    Ticket,
    Transition,
)

__all__ = [
    "BUCKETS",
    "BULKHEAD_FULL",
    "CLOSED",
    "HALF_OPEN",
    "MODES",
    "OPEN",
    "CircuitState",
    "Policy",
    "Ticket",
    "Transition",
    "acquire",
    "advance",
    "closed_ticket",
    "idle",
    "open_duration_ms",
    "record",
    "record_successes",
    "reject_while_open",
    "release",
    "renew_slots",
    "reset",
    "return_slot",
    "snapshot",
    "successes_cannot_trip",
]


def open_duration_ms(policy: Policy, trips: int) -> int:
    """How long the ``trips``-th opening since the last full close lasts, floored to the ms."""
    seconds = policy.recovery_timeout
    if trips > 1 and policy.backoff_multiplier != 1.0:
        try:
            seconds *= policy.backoff_multiplier ** (trips - 1)
        except OverflowError:  # Lua yields inf here; min() below gives the same answer
            seconds = float("inf")
    return int(min(seconds, policy.max_recovery_timeout) * 1000)


# --- acquire ------------------------------------------------------------------------------------


def acquire(state: CircuitState, policy: Policy, now_ms: int) -> Ticket:
    """Ask to make one call; may move an open circuit to half-open (returned in the ticket).

    A tracked policy (``policy.tracked``) also gives an admitted call a bulkhead slot; with
    ``max_concurrent_calls`` set, a call finding that many live slots is refused with state
    ``bulkhead_full`` (before any transition or permit), except in monitor mode, where it
    runs with ``over_cap`` set. An open circuit's rejection comes first.
    """
    if policy.tracked:
        return _acquire_tracked(state, policy, now_ms)
    return _acquire(state, policy, now_ms)


def _acquire_tracked(state: CircuitState, policy: Policy, now_ms: int) -> Ticket:
    rejected = reject_while_open(state, policy, now_ms)
    if rejected is not None:
        return rejected
    slots = state.slots
    for slot, expires in list(slots.items()):
        if expires <= now_ms:
            del slots[slot]  # a killed process's slot: its lease ran out
    cap = policy.max_concurrent_calls
    full = 0 < cap <= len(slots)
    if full and policy.mode != MONITOR:
        return Ticket(
            state.circuit,
            False,
            BULKHEAD_FULL,
            state.generation,
            None,
            bulkhead_retry_ms(policy, min(slots.values()) - now_ms),
            epoch=state.epoch,
        )
    ticket = _acquire(state, policy, now_ms)
    if not ticket.admitted or ticket.monitor_rejected:
        return ticket  # refused by the circuit (monitor mode: runs untracked, as in Redis)
    state.slot_seq += 1
    slot = f"s{state.slot_seq}"
    slots[slot] = now_ms + policy.slot_lease_ms
    return Ticket(
        ticket.circuit,
        True,
        ticket.state,
        ticket.generation,
        ticket.permit,
        0,
        ticket.monitor_rejected,
        ticket.transitions,
        ticket.epoch,
        slot,
        full,
    )


def bulkhead_retry_ms(policy: Policy, earliest_lease_ms: int) -> int:
    """What a bulkhead refusal tells the caller to wait: until a slot's lease could end at the
    latest, but no longer than the call deadline (or one second without one)."""
    return max(0, min(earliest_lease_ms, policy.deadline_ms or 1000))


def _acquire(state: CircuitState, policy: Policy, now_ms: int) -> Ticket:
    ticket = closed_ticket(state)
    if ticket is not None:
        return ticket
    rejected = reject_while_open(state, policy, now_ms)
    if rejected is not None:
        return rejected
    transitions: tuple[Transition, ...] = ()
    if state.state == OPEN:
        transitions = (_half_open(state, now_ms),)
    permits = state.permits
    for permit, expires in list(permits.items()):
        if expires <= now_ms:
            del permits[permit]
    if len(permits) < policy.half_open_max_calls:
        state.permit_seq += 1
        permit = f"p{state.permit_seq}"
        permits[permit] = now_ms + policy.permit_ttl_ms
        return Ticket(
            state.circuit,
            True,
            HALF_OPEN,
            state.generation,
            permit,
            transitions=transitions,
            epoch=state.epoch,
        )
    return _reject(state, policy, min(permits.values(), default=now_ms) - now_ms, transitions)


def _half_open(state: CircuitState, now_ms: int) -> Transition:
    state.state = HALF_OPEN
    state.permits.clear()
    state.half_open_successes = 0
    return _transition(state, "half_opened", OPEN, now_ms)


def advance(state: CircuitState, now_ms: int) -> list[Transition]:
    """Open → half-open once the open time has passed, without a call (``acquire`` does the
    same on the first call after it): the ``half_opened`` transition, else nothing. Run by
    readers (the admin, health, metrics) and the sweeper so that a quiet circuit does not
    look open for ever; the next call then gets a trial permit as usual."""
    if state.state != OPEN or now_ms < state.open_until_ms:
        return []
    return [_half_open(state, now_ms)]


def idle(state: CircuitState, now_ms: int, idle_ms: int, empty_since: int | None = None) -> bool:
    """True when the circuit may be forgotten: closed, no call in flight (bulkhead slot or
    trial permit), and no outcome recorded for ``idle_ms`` (the newest window bucket ended
    that long ago). Such a state equals a fresh one but for its epoch, so forgetting it loses
    nothing but late results.

    An empty window means no outcome since the circuit was made or last closed, which may have
    been a moment ago, with its first calls still running (a closed call holds nothing in the
    state): it is idle only once ``empty_since`` - when a sweep first found the window of this
    generation empty (None: not before this one) - lies ``idle_ms`` back."""
    if state.state != CLOSED or state.permits:
        return False
    if any(expires > now_ms for expires in state.slots.values()):
        return False
    if not state.win_calls:
        return empty_since is not None and empty_since <= now_ms - idle_ms
    return (state.win_head + 1) * state.bucket_ms <= now_ms - idle_ms


def closed_ticket(state: CircuitState) -> Ticket | None:
    """The ticket admitting a call of this circuit while it is closed; None when it is not.

    Closed tickets carry no permit, so one ticket serves a whole generation (``acquire``
    returns it without changing anything).
    """
    if state.state != CLOSED:
        return None
    ticket = state.closed_ticket
    if ticket is None or ticket.generation != state.generation or ticket.epoch != state.epoch:
        ticket = Ticket(state.circuit, True, CLOSED, state.generation, epoch=state.epoch)
        state.closed_ticket = ticket
    return ticket


def reject_while_open(state: CircuitState, policy: Policy, now_ms: int) -> Ticket | None:
    """The rejection of an open circuit before its trial time, else None; changes nothing.

    Read-only, so a backend may ask it without its lock (and then check that the generation
    did not change meanwhile).
    """
    open_until_ms = state.open_until_ms
    if state.state == OPEN and now_ms < open_until_ms:
        return _reject(state, policy, open_until_ms - now_ms, ())
    return None


def _reject(
    state: CircuitState, policy: Policy, retry_after_ms: int, transitions: tuple[Transition, ...]
) -> Ticket:
    monitor = policy.mode == MONITOR
    return Ticket(
        state.circuit,
        monitor,
        state.state,
        state.generation,
        None,
        retry_after_ms if retry_after_ms > 0 else 0,  # not max(): see Policy.run_times
        monitor,
        transitions,
        state.epoch,
    )


# --- record / release / reset -------------------------------------------------------------------


def record(
    state: CircuitState,
    policy: Policy,
    now_ms: int,
    ticket: Ticket,
    success: bool,
    duration_ms: int,
) -> list[Transition]:
    """Count the outcome of an admitted call; returns the transitions it caused (0 or 1)."""
    # _current(), inline: this is every counted call's path.
    if ticket.generation != state.generation or ticket.epoch != state.epoch or not ticket.admitted:
        return []  # a late result: the circuit has transitioned (or been re-created) since
    failed = not success or (0 < policy.deadline_ms < duration_ms)
    if state.state == CLOSED:
        return _record_closed(state, policy, now_ms, failed)
    permit = ticket.permit
    if permit is None or state.state != HALF_OPEN:
        return []  # monitor-mode calls that enforced mode would have rejected
    expires = state.permits.pop(permit, None)
    if expires is None or expires <= now_ms:
        return []  # released, or expired: its slot may already belong to another trial
    if failed:
        state.consecutive_failures += 1
        return [_trip(state, policy, now_ms, HALF_OPEN)]
    state.consecutive_failures = 0
    state.half_open_successes += 1
    if state.half_open_successes < policy.success_threshold:
        return []
    state.state = CLOSED
    state.clear_counters()
    return [_transition(state, "closed", HALF_OPEN, now_ms)]


def _record_closed(
    state: CircuitState, policy: Policy, now_ms: int, failed: bool
) -> list[Transition]:
    if state.bucket_ms != policy.bucket_ms:
        state.clear_window(policy.bucket_ms)
    index = now_ms // state.bucket_ms
    if index > state.win_head:
        state.roll(index)
    # A clock that stepped back lands in the newest bucket rather than a reused one.
    slot = state.win_head % BUCKETS
    state.calls[slot] += 1
    state.win_calls += 1
    if failed:
        state.failures[slot] += 1
        state.win_failures += 1
        state.consecutive_failures += 1
        # In place: rebuilding a tuple of up to RUN_TIMES times cost ~3,000 instructions.
        run = state.run
        run.append(now_ms)
        while len(run) > policy.run_times:  # once, or more after the threshold was lowered
            del run[0]
        if 0 < policy.failure_threshold <= state.consecutive_failures:
            return [_trip(state, policy, now_ms, CLOSED)]
    elif state.run:
        _end_run(state, now_ms)
    else:
        state.consecutive_failures = 0
    rate = policy.failure_rate_threshold
    # Integer comparison so that Python and Lua agree exactly at the threshold.
    if (
        rate > 0
        and state.win_calls >= policy.minimum_calls
        and state.win_failures * 100 >= rate * state.win_calls
    ):
        return [_trip(state, policy, now_ms, CLOSED)]
    return []


def _end_run(state: CircuitState, now_ms: int) -> None:
    """A closed success dated ``now_ms`` ends the run of failures dated at or before it.

    Recorded in order that is every failure; a success that lands late (a deferred success of
    another process) leaves the failures made after it counted, so it never erases a later run
    (see ``CircuitState.run``).
    """
    run = state.run
    later = [t for t in run if t > now_ms]
    if len(later) < len(run):
        state.run = later
        state.consecutive_failures = len(later)


def successes_cannot_trip(state: CircuitState, policy: Policy) -> bool:
    """True when no number of further successes could open this closed circuit.

    Successes only lower the failure rate, so once ``minimum_calls`` is reached without a
    trip (or with no failures at all) they cannot trip it; this lets ``record_successes`` count
    a batch at once.
    """
    rate = policy.failure_rate_threshold
    return (
        rate <= 0
        or state.win_failures == 0
        or (
            state.win_calls >= policy.minimum_calls
            and state.win_failures * 100 < rate * state.win_calls
        )
    )


def record_successes(
    state: CircuitState, policy: Policy, now_ms: int, tickets: list[Ticket]
) -> list[Transition]:
    """Exactly ``record(state, policy, now_ms, t, True, 0)`` for each ticket, in order.

    An in-process shortcut for batched fast (not slow) successes; remote backends need not
    mirror it. Counts the batch at once when that cannot differ from one-by-one recording.
    """
    if state.state == CLOSED:
        count, shared = 0, state.closed_ticket
        if shared is not None and _current(state, shared):
            count = tickets.count(shared)  # C speed: the batch is mostly this one shared object
        if count != len(tickets):
            count = sum(1 for t in tickets if _current(state, t) and t.admitted)
        if not count:
            return []
        if state.bucket_ms != policy.bucket_ms:
            state.clear_window(policy.bucket_ms)
        index = now_ms // state.bucket_ms
        if index > state.win_head:
            state.roll(index)
        if successes_cannot_trip(state, policy):
            state.calls[state.win_head % BUCKETS] += count
            state.win_calls += count
            if state.run:
                _end_run(state, now_ms)
            else:
                state.consecutive_failures = 0
            return []
    transitions: list[Transition] = []
    for ticket in tickets:
        transitions += record(state, policy, now_ms, ticket, True, 0)
    return transitions


def release(state: CircuitState, ticket: Ticket) -> bool:
    """Give back a half-open permit without an outcome; True if a live permit was returned."""
    if ticket.permit is None or not _current(state, ticket):
        return False
    return state.permits.pop(ticket.permit, None) is not None


def return_slot(state: CircuitState, ticket: Ticket) -> bool:
    """Give back the bulkhead slot of a call that ended (whatever its outcome was, and
    whatever happened to the circuit meanwhile); True if a live slot was returned."""
    if ticket.slot is None or ticket.epoch != state.epoch:
        return False
    return state.slots.pop(ticket.slot, None) is not None


def renew_slots(state: CircuitState, policy: Policy, now_ms: int, tickets: list[Ticket]) -> int:
    """Extend the leases of calls still running (a lapsed slot is not taken back: its place may
    be someone else's by now); returns how many were renewed."""
    renewed = 0
    for ticket in tickets:
        if ticket.slot in state.slots and ticket.epoch == state.epoch:
            state.slots[ticket.slot] = now_ms + policy.slot_lease_ms
            renewed += 1
    return renewed


def _current(state: CircuitState, ticket: Ticket) -> bool:
    """Whether ``ticket`` was issued by this circuit as it is now (same epoch and generation).

    The generation alone is not enough: a store that lost the circuit (Redis emptied, keys
    evicted) re-creates it under a new epoch with the generation back at 0, and permit ids
    start again at ``p1``.
    """
    return ticket.generation == state.generation and ticket.epoch == state.epoch


def reset(state: CircuitState, now_ms: int) -> list[Transition]:
    """Close the circuit and clear every counter; always exactly one ``reset`` transition."""
    from_state = state.state
    state.state = CLOSED
    state.clear_counters()
    return [_transition(state, "reset", from_state, now_ms)]


def _trip(state: CircuitState, policy: Policy, now_ms: int, from_state: str) -> Transition:
    state.state = OPEN
    state.trips += 1
    state.opened_at_ms = now_ms
    state.open_until_ms = now_ms + open_duration_ms(policy, state.trips)
    state.permits.clear()
    state.half_open_successes = 0
    return _transition(state, "opened", from_state, now_ms)


def _transition(state: CircuitState, kind: str, from_state: str, now_ms: int) -> Transition:
    """Bump the generation and describe the change; counters are read *after* the change."""
    state.generation += 1
    calls = state.win_calls
    return Transition(
        id=f"{state.epoch}:{state.generation}",
        circuit=state.circuit,
        kind=kind,
        from_state=from_state,
        to_state=state.state,
        generation=state.generation,
        at_ms=now_ms,
        failure_count=max(state.consecutive_failures, state.win_failures),
        failure_rate=state.win_failures * 100 / calls if calls else None,
        retry_after_ms=max(0, state.open_until_ms - now_ms) if state.state == OPEN else 0,
    )


# --- snapshot -----------------------------------------------------------------------------------


def snapshot(state: CircuitState, policy: Policy, now_ms: int) -> dict[str, Any]:
    """A read-only, JSON-friendly view of the circuit at ``now_ms`` (state is not modified)."""
    calls, failures = state.window_totals(policy.bucket_ms, now_ms)
    live = [expires for expires in state.permits.values() if expires > now_ms]
    if state.state == OPEN:
        retry_after_ms = max(0, state.open_until_ms - now_ms)
    elif state.state == HALF_OPEN and len(live) >= policy.half_open_max_calls:
        retry_after_ms = max(0, min(live) - now_ms)
    else:
        retry_after_ms = 0
    not_closed = state.state != CLOSED
    in_flight = sum(1 for expires in state.slots.values() if expires > now_ms)
    return {
        "circuit": state.circuit,
        "state": state.state,
        "mode": policy.mode,
        "generation": state.generation,
        "epoch": state.epoch,
        "failure_count": failures,
        "consecutive_failures": state.consecutive_failures,
        "calls_in_window": calls,
        "failure_rate": failures * 100 / calls if calls else None,
        "opened_at": state.opened_at_ms / 1000 if not_closed and state.opened_at_ms else None,
        "open_until": state.open_until_ms / 1000 if not_closed and state.open_until_ms else None,
        "retry_after": retry_after_ms / 1000,
        "trips": state.trips,
        "half_open_permits": len(live) if state.state == HALF_OPEN else 0,
        "half_open_successes": state.half_open_successes,
        "policy_version": policy.version,
        "in_flight": in_flight if policy.tracked else None,
        "max_concurrent_calls": policy.max_concurrent_calls,
    }
