"""The ``Backend`` interface every circuit-state store implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, Protocol

from resilience import recorder
from resilience.clock import SystemClock
from resilience.engine import Policy, Ticket, Transition
from resilience.rules import Problem, show

OUTBOX_MAX = 1000


class Lane(Protocol):
    """The lock-free side of one circuit, for a caller on a hot path (see ``Backend.lane``).

    ``ticket`` is the circuit's shared admitted ticket while it is closed, else None;
    ``refusal(policy)`` is the rejection of an open circuit before its trial time, else None;
    ``acquire(policy)`` is ``Backend.acquire`` of this circuit; ``ok(ticket, policy)`` counts a
    success of an untimed call and is False when the caller must ``record`` it instead. ``live``
    turns False when the backend is closed: the caller must then ask for a new lane.
    """

    ticket: Ticket | None
    live: bool

    def acquire(self, policy: Policy) -> Ticket: ...

    def refusal(self, policy: Policy) -> Ticket | None: ...

    def ok(self, ticket: Ticket, policy: Policy) -> bool: ...


class Backend(abc.ABC):
    """Stores circuit state and runs each engine operation on it atomically.

    Every method that changes state performs exactly one ``resilience.engine`` operation as one
    atomic step (a lock, a Lua script), never holding anything while the protected call runs.
    Every transition an operation performs is returned to its caller *and* appended to the
    circuit's bounded outbox (``OUTBOX_MAX`` entries, oldest dropped) until acknowledged.
    """

    #: True when every process sharing the settings sees the same state (Redis); False when
    #: each process has its own (memory): ``manage.py resilience status`` then says so.
    shared_state: bool = True

    def __init__(self, clock: Any = None, **options: Any) -> None:
        """``clock`` has ``now_ms()``; ``options`` come from ``RESILIENCE["OPTIONS"]``."""
        self.clock = clock if clock is not None else SystemClock()
        self.options = options

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[Problem]:
        """What is wrong with ``options`` (``RESILIENCE["OPTIONS"]``), found without building
        anything; ``manage.py check`` reports each problem under its own id. A subclass adds its
        own options' problems to these."""
        clock = options.get("clock")
        if clock is None or callable(getattr(clock, "now_ms", None)):
            return []
        return [
            Problem(
                "OPTIONS.clock",
                f"OPTIONS['clock'] must have a now_ms() method, not {show(clock)}.",
                "Leave it out (the system clock), or use resilience.clock.ManualClock in tests.",
            )
        ]

    @abc.abstractmethod
    def acquire(self, name: str, policy: Policy) -> Ticket:
        """Ask to run one call of circuit ``name``: admitted, permitted (half-open) or rejected.

        May perform the ``half_opened`` transition, found in ``ticket.transitions``.
        """

    @abc.abstractmethod
    def record(
        self, ticket: Ticket, policy: Policy, success: bool, duration_ms: int
    ) -> list[Transition]:
        """Report the outcome of an admitted call; returns the transitions it caused.

        Results of tickets from an older generation, or whose permit expired, are ignored.
        """

    @abc.abstractmethod
    def release(self, ticket: Ticket, policy: Policy) -> None:
        """Return the ticket's half-open permit without an outcome (cancelled, ignored error)."""

    @abc.abstractmethod
    def return_slot(self, ticket: Ticket, policy: Policy) -> None:
        """Give back the bulkhead slot of a call that ended (``ticket.slot``; no-op without one).

        Called once per tracked call, whatever its outcome and whatever the circuit did
        meanwhile. A remote backend may send it after returning (it must reach the store
        promptly, without the caller waiting for a round trip).
        """

    @abc.abstractmethod
    def renew_slots(self, name: str, policy: Policy, tickets: list[Ticket]) -> None:
        """Extend the slot leases of these calls of ``name``, still running (background
        thread): only a killed process's slots may lapse."""

    @abc.abstractmethod
    def reset(self, name: str, policy: Policy) -> list[Transition]:
        """Close the circuit and clear its counters; returns exactly one ``reset`` transition
        (last; a backend that applies queued outcomes first may return what they did before)."""

    @abc.abstractmethod
    def snapshot(self, name: str, policy: Policy) -> dict[str, Any]:
        """A read-only view of the circuit (see ``resilience.engine.snapshot`` for the keys).

        A circuit never seen before reads as a fresh closed circuit and is not created.
        """

    @abc.abstractmethod
    def snapshot_many(self, policies: dict[str, Policy]) -> dict[str, dict[str, Any]]:
        """``snapshot`` for many circuits at once; one round trip in a remote backend."""

    def not_closed(self) -> dict[str, str] | None:
        """``{name: state}`` of every circuit whose stored state is not closed (``"open"``,
        ``"half_open"``), from an index the backend keeps up to date with every transition, so
        that the cost grows with the circuits listed, not with all circuits (the admin's
        overview and live-state filter). Every other circuit reads as closed, monitor and
        forced modes aside (they are the policy's, not the backend's).

        A circuit whose snapshot would say open or half-open is always listed (within a
        snapshot, this process's own queued successes aside). ``None``: the backend keeps no
        such index, and a caller must read every circuit (``snapshot_many``) instead.
        """
        return None

    @abc.abstractmethod
    def outbox(self, name: str, limit: int = 100) -> list[Transition]:
        """Up to ``limit`` unacknowledged transitions of ``name``, oldest first."""

    @abc.abstractmethod
    def ack(self, name: str, ids: list[str]) -> None:
        """Drop the transitions with these ids from the outbox of ``name`` (persisted)."""

    @abc.abstractmethod
    def health(self) -> dict[str, Any]:
        """At least ``{"backend": <name>, "degraded": bool}``; must not raise."""

    # --- optional: defaults that suit a backend without a hot path, background work or probe ---

    def advance(self, names: Iterable[str]) -> dict[str, list[Transition]]:
        """Move each of these circuits whose open time has passed to half-open without a call
        (``engine.advance``), atomically; ``{name: transitions}`` of those moved (also in their
        outboxes). Nothing by default: the next call moves it (``acquire``)."""
        return {}

    def retire(self, names: Iterable[str], idle_ms: int) -> list[str]:
        """Forget these circuits where ``engine.idle`` holds (closed, nothing in flight, no
        outcome for ``idle_ms``) and nothing waits in their outbox; the names forgotten. Their
        next use starts them afresh (a new epoch: late results are ignored). Nothing by
        default."""
        return []

    def snapshot_current(self, policies: dict[str, Policy]) -> dict[str, dict[str, Any]]:
        """``snapshot_many`` for the readers (admin, health, metrics, status): a circuit whose
        open time has passed is first moved to half-open (``advance``; its transition goes to
        the recorder), so a circuit nobody calls does not look open for ever. Costs a second
        round trip only when such a circuit is read."""
        snapshots = self.snapshot_many(policies)
        due = [
            name
            for name, snap in snapshots.items()
            if snap.get("state") == "open" and not snap.get("retry_after")
        ]
        if not due:
            return snapshots
        for name, transitions in self.advance(due).items():
            self.on_background_transitions(name, transitions)
        return {**snapshots, **self.snapshot_many({name: policies[name] for name in due})}

    def lane(self, name: str) -> Lane | None:
        """The lock-free side of circuit ``name`` (see ``Lane``), or None: every call goes
        through ``acquire``/``record``. The memory backend has lanes."""
        return None

    def on_background_transitions(self, name: str, transitions: list[Transition]) -> None:
        """Hand on transitions the backend performed on its own, not for any caller (the Redis
        backend's background send of deferred successes): to ``resilience.recorder``, which
        passes them to the events layer. Tests may replace it on an instance."""
        recorder.emit(name, transitions)

    def flush(self) -> None:  # noqa: B027 - optional hook, nothing held back by default
        """Send now whatever the backend holds back (the Redis backend's deferred successes)."""

    def probe(self) -> bool:
        """Check the store now (tests, operators); True when it is usable (degraded mode, if
        any, ended)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and threads; the backend is not used afterwards."""
