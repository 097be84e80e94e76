"""The ``Backend`` interface every circuit-state store implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, Protocol

from resilience import recorder, series
from resilience.backends.history import Batches, HistoryFeed
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
        self._history_feed: HistoryFeed | None = None

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

    # --- outcome history (docs/history.md) --------------------------------------------------

    def record_history(self) -> None:
        """From now on, send this process's call counts (``resilience.stats``) to this backend's
        history: every few seconds, on ``flush()``, at exit and on ``close()``
        (``resilience.backends.history``). ``get_backend()`` does it for the backend it builds."""
        if self._history_feed is None:
            self._history_feed = HistoryFeed(self.store_history, self.clock.now_ms)

    @abc.abstractmethod
    def store_history(self, batches: Batches) -> bool:
        """Add counts to the history: ``{start: {circuit: vector}}``, where ``start`` is a
        10-second bucket's start (ms) and ``vector`` a ``resilience.series`` history vector;
        each one goes into its 10-second bucket, its 1-minute bucket and the circuit's totals,
        and what is older than the history keeps is pruned. All circuits in one round trip in a
        remote backend. True: stored (or lost mid-way: never stored twice); False: not tried
        (the store is unreachable), the caller keeps them for later. Never raises.
        """

    @abc.abstractmethod
    def read_history(
        self, names: list[str], starts: range, size_ms: int
    ) -> dict[str, list[list[int]]]:
        """The history vectors of the buckets of ``size_ms`` (10 s or 1 min) at ``starts``,
        for each circuit of ``names`` (zeros where nothing was counted); one round trip in a
        remote backend. ``BackendError`` when the store cannot be read."""

    @abc.abstractmethod
    def read_totals(self, names: list[str]) -> dict[str, list[int]]:
        """The lifetime totals vector of each circuit of ``names``; one round trip in a remote
        backend. ``BackendError`` when the store cannot be read."""

    def history(self, name: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        """The buckets of circuit ``name`` from ``since_ms`` to ``until_ms``, oldest first (see
        ``history_many``)."""
        return self.history_many([name], since_ms, until_ms)[name]

    def history_many(
        self, names: Iterable[str], since_ms: int, until_ms: int
    ) -> dict[str, list[dict[str, Any]]]:
        """``{name: buckets}``: every bucket holding a moment of [since_ms, until_ms] (Unix ms),
        empty ones included; 10-second buckets while the range is within the last 6 hours,
        1-minute ones otherwise. ``TypeError``/``ValueError`` for bad arguments (a range over
        7 days), ``BackendError`` when the store cannot be read."""
        series.check_range(since_ms, until_ms)
        wanted = _names(names)
        size_ms = series.resolution(since_ms, until_ms, self.clock.now_ms())
        starts = series.starts(since_ms, until_ms, size_ms)
        vectors = self.read_history(wanted, starts, size_ms) if wanted else {}
        return {
            name: [series.bucket(s, size_ms, v) for s, v in zip(starts, vectors[name], strict=True)]
            for name in wanted
        }

    def totals(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Lifetime counters of each circuit (for Prometheus): ``calls``, ``failures``,
        ``slow``, ``rejected_open``, ``rejected_bulkhead``, ``timeouts`` and ``latency``
        (``bounds_ms``, per-bin ``counts``, ``sum_ms``), summed over every process sharing the
        backend. Forgotten after 7 days without a call."""
        wanted = _names(names)
        vectors = self.read_totals(wanted) if wanted else {}
        return {name: series.totals(vectors[name]) for name in wanted}

    # --- optional: defaults that suit a backend without a hot path, background work or probe ---

    def lane(self, name: str) -> Lane | None:
        """The lock-free side of circuit ``name`` (see ``Lane``), or None: every call goes
        through ``acquire``/``record``. The memory backend has lanes."""
        return None

    def on_background_transitions(self, name: str, transitions: list[Transition]) -> None:
        """Hand on transitions the backend performed on its own, not for any caller (the Redis
        backend's background send of deferred successes): to ``resilience.recorder``, which
        passes them to the events layer. Tests may replace it on an instance."""
        recorder.emit(name, transitions)

    def flush(self) -> None:
        """Send now whatever the backend holds back: this process's counts not yet in the
        history (``record_history``), and a subclass's own (the Redis backend's deferred
        successes)."""
        if self._history_feed is not None:
            self._history_feed.flush()

    def probe(self) -> bool:
        """Check the store now (tests, operators); True when it is usable (degraded mode, if
        any, ended)."""
        return True

    def close(self) -> None:
        """Release connections and threads; the backend is not used afterwards. A subclass
        calls this first: the history's last counts are sent."""
        feed, self._history_feed = self._history_feed, None
        if feed is not None:
            feed.close()


def _names(names: Iterable[str]) -> list[str]:
    """``names`` as a list of circuit names; ``TypeError`` for anything else (a lone string)."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TypeError(f"names must be a list of circuit names, not {type(names).__name__}")
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if not isinstance(name, str):
            raise TypeError(f"a circuit name must be a str, not {type(name).__name__}")
    return wanted
