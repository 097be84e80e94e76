"""In-process circuit state, thread- and asyncio-safe: for development, tests, single processes."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from resilience import engine
from resilience.backends.base import OUTBOX_MAX, Backend
from resilience.engine import CircuitState, Policy, Ticket, Transition


class _Circuit:
    __slots__ = ("lock", "outbox", "state")

    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self.state = CircuitState(name)
        self.outbox: deque[Transition] = deque(maxlen=OUTBOX_MAX)


class MemoryBackend(Backend):
    """Circuit state in a dict of this process, one short lock per circuit.

    Locks are held only for the engine operation itself, never across the protected call, so a
    slow call never blocks another thread or task. Options for other backends are ignored so
    that switching ``BACKEND`` alone works.
    """

    def __init__(self, clock: Any = None, **options: Any) -> None:
        super().__init__(clock, **options)
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
        # Lock-free when closed: the cached ticket is replaced atomically, and a ticket read just
        # before a transition carries the old generation, so its result is ignored as late.
        ticket = circuit.state.closed_ticket
        if ticket is not None and ticket.generation == circuit.state.generation:
            return ticket
        with circuit.lock:
            ticket = engine.acquire(circuit.state, policy, self.clock.now_ms())
            if ticket.transitions:
                circuit.outbox.extend(ticket.transitions)
        return ticket

    def record(
        self, ticket: Ticket, policy: Policy, success: bool, duration_ms: int
    ) -> list[Transition]:
        circuit = self._circuit(ticket.circuit)
        with circuit.lock:
            transitions = engine.record(
                circuit.state, policy, self.clock.now_ms(), ticket, success, duration_ms
            )
            if transitions:
                circuit.outbox.extend(transitions)
        return transitions

    def release(self, ticket: Ticket, policy: Policy) -> None:
        if ticket.permit is None:
            return
        circuit = self._circuit(ticket.circuit)
        with circuit.lock:
            engine.release(circuit.state, ticket)

    def reset(self, name: str, policy: Policy) -> list[Transition]:
        circuit = self._circuit(name)
        with circuit.lock:
            transitions = engine.reset(circuit.state, self.clock.now_ms())
            circuit.outbox.extend(transitions)
        return transitions

    def snapshot(self, name: str, policy: Policy) -> dict[str, Any]:
        circuit = self._circuits.get(name)
        now_ms = self.clock.now_ms()
        if circuit is None:
            return engine.snapshot(CircuitState(name, epoch=""), policy, now_ms)
        with circuit.lock:
            return engine.snapshot(circuit.state, policy, now_ms)

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
