"""In-process circuit state, thread- and asyncio-safe: for development, tests, single processes."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from resilience import engine
from resilience.backends.base import Backend
from resilience.backends.history import Batches
from resilience.backends.history_table import HistoryTable
from resilience.backends.memory_lane import FLUSH_AT, Lane
from resilience.clock import SystemClock
from resilience.engine import CLOSED, OPEN, CircuitState, Policy, Ticket, Transition
from resilience.rules import Problem

__all__ = ["FLUSH_AT", "Lane", "MemoryBackend"]


class MemoryBackend(Backend):
    """Circuit state in a dict of this process, one short lock per circuit.

    Locks are held only for the engine operation itself, never across the protected call, so a
    slow call never blocks another thread or task. The closed path takes no lock at all: closed
    tickets are shared, and a fast success that cannot trip the circuit is queued and counted
    (exactly as ``engine.record`` would) by the next locked operation on the circuit, at the
    latest when its window bucket ends. Options meant for other backends are ignored so that
    switching ``BACKEND`` alone works.
    """

    shared_state = False

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[Problem]:
        unknown = sorted(str(key) for key in options if key != "clock")
        ignored = [
            Problem(
                "OPTIONS.ignored",
                f"The memory backend ignores OPTIONS {', '.join(unknown)}.",
                "Its only option is 'clock'; Redis options need "
                "resilience.backends.redis.RedisBackend.",
                warning=True,
            )
        ]
        return super().check_options(options) + (ignored if unknown else [])

    def __init__(self, clock: Any = None, **options: Any) -> None:
        super().__init__(clock, **options)
        self._now = self.clock.now_ms
        # The system clock is read in nanoseconds on the call path, sparing a method call.
        if type(self.clock) is SystemClock:
            self.fast_clock: tuple[Callable[[], int], int] = (time.time_ns, 1_000_000)
        else:
            self.fast_clock = (self._now, 1)
        self._fast_now, self._fast_scale = self.fast_clock
        self._circuits: dict[str, Lane] = {}
        self._create_lock = threading.Lock()
        # {name: state} of the circuits not closed (see not_closed), kept by Lane.publish.
        self._not_closed: dict[str, str] = {}
        self._history = HistoryTable()

    def _circuit(self, name: str) -> Lane:
        circuit = self._circuits.get(name)
        if circuit is None:
            with self._create_lock:
                circuit = self._circuits.get(name)
                if circuit is None:
                    circuit = self._circuits[name] = Lane(name, self)
        return circuit

    def _index(self, state: CircuitState) -> None:
        """Record in the not-closed index the state ``state`` is in now (its lock is held)."""
        if state.state == CLOSED:
            self._not_closed.pop(state.circuit, None)
        else:
            self._not_closed[state.circuit] = state.state

    def not_closed(self) -> dict[str, str]:
        """The circuits not closed, from the index every transition keeps (a copy of it)."""
        return self._not_closed.copy()

    def lane(self, name: str) -> Lane:
        """The lock-free side of circuit ``name`` (created if new), for callers on a hot path.

        A caller may run a call on ``lane.ticket`` when it is not None, take
        ``lane.refusal(policy)`` as the answer when that is not None, else ask
        ``lane.acquire(policy)`` (``acquire`` without the lookup); and report a success with
        ``lane.ok()`` when the call was not timed (instead of ``record``, which it must call
        when ``ok()`` returns False). A lane whose ``live`` is False belongs to a closed
        backend.
        """
        return self._circuits.get(name) or self._circuit(name)

    def acquire(self, name: str, policy: Policy) -> Ticket:
        return (self._circuits.get(name) or self._circuit(name)).acquire(policy)

    def record(
        self, ticket: Ticket, policy: Policy, success: bool, duration_ms: int
    ) -> list[Transition]:
        circuit = self._circuits.get(ticket.circuit)
        if circuit is None:
            return []  # acquired from another backend instance: a late result
        if success and duration_ms <= circuit.fast_max_ms and circuit.ok(ticket, policy):
            return []
        # acquire()/release() rather than ``with``: __enter__/__exit__ cost a failing call
        # ~1,100 instructions more (CPython 3.11); the fast clock spares a method call.
        lock = circuit.lock
        lock.acquire()
        try:
            transitions = self._drain(circuit, policy) if circuit.pending else []
            now = self._fast_now() // self._fast_scale
            transitions += engine.record(circuit.state, policy, now, ticket, success, duration_ms)
            return self._settle(circuit, policy, transitions)
        finally:
            lock.release()

    def _count_queued(self, circuit: Lane, policy: Policy) -> None:
        """Count a full queue of fast successes (``Lane.ok``).

        That causes no transition: queued successes are counted under the state and policy
        they were queued under (any other operation drains them first), where they cannot trip.
        """
        with circuit.lock:
            self._settle(circuit, policy, self._drain(circuit, policy))

    def _drain(self, circuit: Lane, policy: Policy) -> list[Transition]:
        """Count the queued fast successes (caller holds the lock)."""
        pending = circuit.pending
        if not pending:
            return []
        # Successes appended meanwhile (lock-free) go after these: they stay queued.
        count = len(pending)
        tickets = pending[:count]
        del pending[:count]
        state = circuit.state
        now_ms = self._now()
        if state.win_head and now_ms // state.bucket_ms > state.win_head:
            # They were queued while the newest bucket was current: count them there.
            now_ms = (state.win_head + 1) * state.bucket_ms - 1
        # Count them under the policy they were queued under, not a newer one.
        return engine.record_successes(state, circuit.fast_policy or policy, now_ms, tickets)

    def _settle(
        self, circuit: Lane, policy: Policy, transitions: list[Transition]
    ) -> list[Transition]:
        """Publish transitions and re-arm the lock-free paths (caller holds the lock)."""
        state = circuit.state
        if transitions:  # only a transition changes the generation, so the closed ticket
            circuit.publish(transitions)
            circuit.ticket = engine.closed_ticket(state)
        # Not while a run of failures is counted: a success ends the failures dated before it,
        # so it is recorded at its own time (queued ones are counted later, at another time).
        if (
            state.state == CLOSED
            and not state.run
            and state.win_head
            and state.bucket_ms == policy.bucket_ms
            and engine.successes_cannot_trip(state, policy)
        ):
            circuit.fast_policy = policy
            circuit.fast_max_ms = policy.deadline_ms or sys.maxsize
            circuit.fast_until = (state.win_head + 1) * state.bucket_ms * self.fast_clock[1]
        else:
            circuit.fast_until = 0
        return transitions

    def release(self, ticket: Ticket, policy: Policy) -> None:
        circuit = self._circuits.get(ticket.circuit)
        if ticket.permit is None or circuit is None:
            return
        with circuit.lock:
            engine.release(circuit.state, ticket)

    def return_slot(self, ticket: Ticket, policy: Policy) -> None:
        circuit = self._circuits.get(ticket.circuit)
        if ticket.slot is None or circuit is None:
            return
        with circuit.lock:
            engine.return_slot(circuit.state, ticket)

    def renew_slots(self, name: str, policy: Policy, tickets: list[Ticket]) -> None:
        circuit = self._circuits.get(name)
        if circuit is None:
            return
        with circuit.lock:
            engine.renew_slots(circuit.state, policy, self._now(), tickets)

    def assume_open(self, name: str, open_until_ms: int) -> None:
        """Start the not yet used circuit ``name`` open until ``open_until_ms``, silently.

        For state known from elsewhere (the Redis backend's outage fallback): no transition is
        made, since the opening was already reported where it happened; ``trips`` is 1 so that
        a failed trial backs off, and the opening time is unknown (0).
        """
        circuit = self._circuit(name)
        with circuit.lock:
            circuit.disarm()
            state = circuit.state
            state.state = OPEN
            state.trips = 1
            state.open_until_ms = open_until_ms
            self._index(state)

    def reset(self, name: str, policy: Policy) -> list[Transition]:
        circuit = self._circuit(name)
        with circuit.lock:
            transitions = self._drain(circuit, policy)
            transitions += engine.reset(circuit.state, self._now())
            return self._settle(circuit, policy, transitions)

    def advance(self, names: Iterable[str]) -> dict[str, list[Transition]]:
        found = {}
        for name in names:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.state.state != OPEN:
                continue
            with circuit.lock:
                transitions = engine.advance(circuit.state, self._now())
                if transitions:  # open: no lock-free path was armed, none is now
                    circuit.publish(transitions)
                    found[name] = transitions
        return found

    def retire(self, names: Iterable[str], idle_ms: int) -> list[str]:
        retired = []
        for name in names:
            circuit = self._circuits.get(name)
            if circuit is None:
                continue
            with circuit.lock:
                now = self._now()
                if (
                    circuit.pending
                    or circuit.outbox
                    or not engine.idle(circuit.state, now, idle_ms, _empty_since(circuit, now))
                ):
                    continue  # used lately, events not stored yet, or not closed
                circuit.disarm()
                circuit.live = False  # callers holding it ask for a new one
                with self._create_lock:
                    if self._circuits.get(name) is circuit:
                        del self._circuits[name]
                self._not_closed.pop(name, None)
            retired.append(name)
        return retired

    def snapshot(self, name: str, policy: Policy) -> dict[str, Any]:
        circuit = self._circuits.get(name)
        if circuit is None:
            return engine.snapshot(CircuitState(name, epoch=""), policy, self._now())
        with circuit.lock:
            self._settle(circuit, policy, self._drain(circuit, policy))
            return engine.snapshot(circuit.state, policy, self._now())

    def snapshot_many(self, policies: dict[str, Policy]) -> dict[str, dict[str, Any]]:
        return {name: self.snapshot(name, policy) for name, policy in policies.items()}

    def outbox(self, name: str, limit: int = 100) -> list[Transition]:
        circuit = self._circuits.get(name)
        if circuit is None or circuit.outbox is None or limit <= 0:
            return []
        with circuit.lock:
            return list(circuit.outbox)[:limit]

    def ack(self, name: str, ids: list[str]) -> None:
        circuit = self._circuits.get(name)
        if circuit is None or circuit.outbox is None or not ids:
            return
        done = set(ids)
        with circuit.lock:
            kept = [t for t in circuit.outbox if t.id not in done]
            circuit.outbox.clear()
            circuit.outbox.extend(kept)

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "degraded": False, "circuits": len(self._circuits)}

    def store_history(self, batches: Batches) -> bool:
        self._history.store(batches, self._now())
        return True

    def read_history(
        self, names: list[str], starts: range, size_ms: int
    ) -> dict[str, list[list[int]]]:
        return self._history.read(names, starts, size_ms, self._now())

    def read_totals(self, names: list[str]) -> dict[str, list[int]]:
        return self._history.totals(names, self._now())

    def close(self) -> None:
        super().close()
        for circuit in list(self._circuits.values()):
            circuit.disarm()
            circuit.live = False
        self._circuits.clear()
        self._not_closed.clear()


def _empty_since(circuit: Lane, now_ms: int) -> int | None:
    """``engine.idle``'s ``empty_since`` of ``circuit``: when a sweep first found the window of
    its generation empty, None when this one is the first (remembered for the next); caller
    holds the lock."""
    state = circuit.state
    if state.win_calls:
        circuit.empty_since = None
        return None
    mark = circuit.empty_since
    if mark is not None and mark[0] == state.generation:
        return mark[1]
    circuit.empty_since = (state.generation, now_ms)
    return None
