"""One circuit of the memory backend and what a call may do on it without taking its lock."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from resilience import engine
from resilience.backends.base import OUTBOX_MAX
from resilience.engine import OPEN, CircuitState, Policy, Ticket, Transition


class LaneOwner(Protocol):
    """What a lane uses of its backend (``MemoryBackend``)."""

    clock: Any
    fast_clock: tuple[Callable[[], int], int]

    def acquire(self, name: str, policy: Policy) -> Ticket: ...

    def _count_queued(self, circuit: Lane, policy: Policy) -> None: ...

    def _index(self, state: CircuitState) -> None: ...


# Batched fast successes are counted under the lock once this many are waiting.
FLUSH_AT = 256


class Lane:
    """One circuit of the memory backend, with what a call may do without taking its lock.

    ``ticket`` is the circuit's shared closed ticket while it is closed, else None: a caller
    holding it was admitted without asking the backend. (Read just before a concurrent
    transition, it carries the old generation, and its result is ignored as late: the lock-free
    read is linearisable.) ``refusal()`` rejects while the circuit is open, and ``ok()`` counts
    a success, lock-free while that cannot differ from ``MemoryBackend.acquire``/``record``.
    What they rely on is re-armed under the lock by every operation that changes the circuit,
    and disarmed when the backend is closed.
    """

    __slots__ = (
        "_backend",
        "_now",
        "_scale",
        "empty_since",
        "fast_max_ms",
        "fast_policy",
        "fast_until",
        "live",
        "lock",
        "outbox",
        "pending",
        "rejection",
        "state",
        "ticket",
    )

    def __init__(self, name: str, backend: LaneOwner) -> None:
        self.lock = threading.Lock()
        self.state = CircuitState(name)
        self.ticket: Ticket | None = engine.closed_ticket(self.state)
        # The last lock-free rejection: (from, until, policy, ticket) in fast clock units, reused
        # within that millisecond.
        self.rejection: tuple[int, int, Policy, Ticket] | None = None
        # Created by the circuit's first transition: most circuits never make one, and an
        # empty deque takes some 600 bytes (docs/engine.md, "Memory per circuit").
        self.outbox: deque[Transition] | None = None
        # Fast successes appended without the lock (list.append is atomic), counted later.
        self.pending: list[Ticket] = []
        # The lock-free success path is open for calls of this policy object lasting at most
        # fast_max_ms, while the fast clock is before fast_until (the end of the newest bucket).
        self.fast_policy: Policy | None = None
        self.fast_max_ms = 0
        self.fast_until = 0
        self._backend = backend
        self._now, self._scale = backend.fast_clock  # fast clock units per millisecond
        self.live = True  # False once its backend is closed: callers must ask for a new one
        # (generation, ms): when a retire sweep first found this generation's window empty.
        self.empty_since: tuple[int, int] | None = None

    def acquire(self, policy: Policy) -> Ticket:
        """``MemoryBackend.acquire`` of this circuit."""
        if not self.live:  # retired (MemoryBackend.retire): the backend has a new lane for it
            return self._backend.acquire(self.state.circuit, policy)
        if policy.tracked:  # every call takes a bulkhead slot: always under the lock
            with self.lock:
                tracked = engine.acquire(self.state, policy, self._backend.clock.now_ms())
                self.publish(tracked.transitions)
            return tracked
        ticket = self.ticket
        if ticket is None:
            ticket = self.refusal(policy)
            if ticket is None:
                with self.lock:
                    ticket = engine.acquire(self.state, policy, self._backend.clock.now_ms())
                    self.publish(ticket.transitions)
        return ticket

    def refusal(self, policy: Policy) -> Ticket | None:
        """The rejection of an open circuit before its trial time, without the lock; else None.

        Every transition bumps the generation after changing the state, so an unchanged
        generation means the read was consistent. A burst of rejections within one millisecond
        shares one ticket.
        """
        state = self.state
        if state.state != OPEN:
            return None
        generation = state.generation
        # Compared in fast clock units: dividing the nanoseconds by 10**6 cost ~470
        # instructions, and the millisecond is only needed to build a new rejection.
        now = self._now()
        cached = self.rejection
        ticket: Ticket | None  # an annotation only: no code
        if cached is not None and cached[0] <= now < cached[1] and cached[2] is policy:
            ticket = cached[3]
            if ticket.generation == generation == state.generation:
                return ticket
        now_ms = now // self._scale
        ticket = engine.reject_while_open(state, policy, now_ms)
        if ticket is not None and ticket.generation == generation == state.generation:
            start = now_ms * self._scale
            self.rejection = (start, start + self._scale, policy, ticket)
            return ticket
        return None

    def ok(self, ticket: Ticket, policy: Policy) -> bool:
        """Count a fast (not slow) success of ``ticket`` without the lock, if that changes
        nothing observable; False: it must be recorded the usual way.

        Queued successes are counted (exactly as ``engine.record`` would) by the next locked
        operation, at the latest when ``FLUSH_AT`` are waiting.
        """
        if policy is self.fast_policy and self._now() < self.fast_until:
            pending = self.pending
            pending.append(ticket)
            if len(pending) >= FLUSH_AT:
                self._backend._count_queued(self, policy)
            return True
        return False

    def publish(self, transitions: Any) -> None:
        """Keep the transitions an operation made in the outbox, and the backend's index of
        circuits not closed in line with the state they left (caller holds the lock)."""
        if transitions:
            if self.outbox is None:
                self.outbox = deque(maxlen=OUTBOX_MAX)
            self.outbox.extend(transitions)
            self._backend._index(self.state)

    def disarm(self) -> None:
        """Send every caller of this lane to the locked path (its state is being replaced)."""
        self.ticket = self.rejection = None
        self.fast_until = 0
