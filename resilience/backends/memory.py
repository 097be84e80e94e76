"""In-process circuit state, thread- and asyncio-safe: for development, tests, single processes."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any

from resilience import engine
from resilience.backends.base import OUTBOX_MAX, Backend
from resilience.clock import SystemClock
from resilience.engine import CLOSED, OPEN, CircuitState, Policy, Ticket, Transition

# Batched fast successes are counted under the lock once this many are waiting.
FLUSH_AT = 256


class _Circuit:
    __slots__ = ("fast_max_ms", "fast_policy", "fast_until", "lock", "outbox", "pending", "state")

    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self.state = CircuitState(name)
        self.outbox: deque[Transition] = deque(maxlen=OUTBOX_MAX)
        # Fast successes appended without the lock (deque.append is atomic), counted later.
        self.pending: deque[Ticket] = deque()
        # The lock-free success path is open for calls of this policy object lasting at most
        # fast_max_ms, while the clock is before fast_until (the end of the newest bucket).
        self.fast_policy: Policy | None = None
        self.fast_max_ms = 0
        self.fast_until = 0


class MemoryBackend(Backend):
    """Circuit state in a dict of this process, one short lock per circuit.

    Locks are held only for the engine operation itself, never across the protected call, so a
    slow call never blocks another thread or task. The closed path takes no lock at all: closed
    tickets are shared, and a fast success that cannot trip the circuit is queued and counted
    (exactly as ``engine.record`` would) by the next locked operation on the circuit, at the
    latest when its window bucket ends. Options meant for other backends are ignored so that
    switching ``BACKEND`` alone works.
    """

    def __init__(self, clock: Any = None, **options: Any) -> None:
        super().__init__(clock, **options)
        self._now = self.clock.now_ms
        # The system clock is read in nanoseconds on the fast path, sparing a division.
        if type(self.clock) is SystemClock:
            self._fast_now, self._fast_scale = time.time_ns, 1_000_000
        else:
            self._fast_now, self._fast_scale = self._now, 1
        self._circuits: dict[str, _Circuit] = {}
        self._create_lock = threading.Lock()

    def _circuit(self, name: str) -> _Circuit:
        circuit = self._circuits.get(name)
        if circuit is None:
            with self._create_lock:
                circuit = self._circuits.get(name)
                if circuit is None:
                    circuit = self._circuits[name] = _Circuit(name)
        return circuit

    def acquire(self, name: str, policy: Policy) -> Ticket:
        circuit = self._circuits.get(name) or self._circuit(name)
        state = circuit.state
        # A ticket read just before a concurrent transition carries the old generation, so its
        # result is ignored as late: the lock-free read is linearisable. (A state's epoch never
        # changes here, and the shared ticket carries it.)
        ticket = state.closed_ticket
        if ticket is not None and ticket.generation == state.generation:
            return ticket
        with circuit.lock:
            ticket = engine.acquire(state, policy, self._now())
            if ticket.transitions:
                circuit.outbox.extend(ticket.transitions)
        return ticket

    def record(
        self, ticket: Ticket, policy: Policy, success: bool, duration_ms: int
    ) -> list[Transition]:
        circuit = self._circuits.get(ticket.circuit)
        if circuit is None:
            return []  # acquired from another backend instance: a late result
        if (
            success
            and policy is circuit.fast_policy
            and duration_ms <= circuit.fast_max_ms
            and self._fast_now() < circuit.fast_until
        ):
            pending = circuit.pending
            pending.append(ticket)
            if len(pending) < FLUSH_AT:
                return []
            with circuit.lock:
                return self._settle(circuit, policy, self._drain(circuit, policy))
        with circuit.lock:
            transitions = self._drain(circuit, policy)
            transitions += engine.record(
                circuit.state, policy, self._now(), ticket, success, duration_ms
            )
            return self._settle(circuit, policy, transitions)

    def _drain(self, circuit: _Circuit, policy: Policy) -> list[Transition]:
        """Count the queued fast successes (caller holds the lock)."""
        pending = circuit.pending
        if not pending:
            return []
        tickets = [pending.popleft() for _ in range(len(pending))]
        state = circuit.state
        now_ms = self._now()
        if state.win_head and now_ms // state.bucket_ms > state.win_head:
            # They were queued while the newest bucket was current: count them there.
            now_ms = (state.win_head + 1) * state.bucket_ms - 1
        # Count them under the policy they were queued under, not a newer one.
        return engine.record_successes(state, circuit.fast_policy or policy, now_ms, tickets)

    def _settle(
        self, circuit: _Circuit, policy: Policy, transitions: list[Transition]
    ) -> list[Transition]:
        """Publish transitions and re-arm the lock-free path (caller holds the lock)."""
        if transitions:
            circuit.outbox.extend(transitions)
        state = circuit.state
        if (
            state.state == CLOSED
            and state.win_head
            and state.bucket_ms == policy.bucket_ms
            and engine.successes_cannot_trip(state, policy)
        ):
            circuit.fast_policy = policy
            circuit.fast_max_ms = policy.slow_call_ms or sys.maxsize
            circuit.fast_until = (state.win_head + 1) * state.bucket_ms * self._fast_scale
        else:
            circuit.fast_until = 0
        return transitions

    def release(self, ticket: Ticket, policy: Policy) -> None:
        circuit = self._circuits.get(ticket.circuit)
        if ticket.permit is None or circuit is None:
            return
        with circuit.lock:
            engine.release(circuit.state, ticket)

    def assume_open(self, name: str, open_until_ms: int) -> None:
        """Start the not yet used circuit ``name`` open until ``open_until_ms``, silently.

        For state known from elsewhere (the Redis backend's outage fallback): no transition is
        made, since the opening was already reported where it happened; ``trips`` is 1 so that
        a failed trial backs off, and the opening time is unknown (0).
        """
        circuit = self._circuit(name)
        with circuit.lock:
            state = circuit.state
            state.state = OPEN
            state.trips = 1
            state.open_until_ms = open_until_ms

    def reset(self, name: str, policy: Policy) -> list[Transition]:
        circuit = self._circuit(name)
        with circuit.lock:
            transitions = self._drain(circuit, policy)
            transitions += engine.reset(circuit.state, self._now())
            return self._settle(circuit, policy, transitions)

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
        if circuit is None or limit <= 0:
            return []
        with circuit.lock:
            return list(circuit.outbox)[:limit]

    def ack(self, name: str, ids: list[str]) -> None:
        circuit = self._circuits.get(name)
        if circuit is None or not ids:
            return
        done = set(ids)
        with circuit.lock:
            kept = [t for t in circuit.outbox if t.id not in done]
            circuit.outbox.clear()
            circuit.outbox.extend(kept)

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "degraded": False, "circuits": len(self._circuits)}

    def close(self) -> None:
        self._circuits.clear()
