"""Value types of the state machine: ``Policy``, ``CircuitState``, ``Ticket``, ``Transition``."""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)
ENFORCED, MONITOR, FORCED_OPEN, DISABLED = "enforced", "monitor", "forced_open", "disabled"
MODES = (ENFORCED, MONITOR, FORCED_OPEN, DISABLED)
TRANSITION_KINDS = ("opened", "half_opened", "closed", "reset")
# The state a ticket reports when the bulkhead (max_concurrent_calls) refused the call.
BULKHEAD_FULL = "bulkhead_full"
BUCKETS = 10
# At most this many failure times of a run are kept (``CircuitState.run``).
RUN_TIMES = 32
MIN_PERMIT_TTL_MS = 30_000
# A bulkhead slot's lease is at least this long; a running call's lease is renewed before it
# ends (resilience.watchdog), so only a killed process's slots ever expire.
MIN_SLOT_LEASE_MS = 5_000
PERMIT_PREFIX = "permit:"


@dataclass(frozen=True, slots=True)
class Policy:
    """The thresholds of one circuit (the engine's view of a ``BreakerPolicy`` row).

    ``mode`` only matters to the engine as ``monitor`` (always admit); ``forced_open`` and
    ``disabled`` are handled by the caller before the backend is reached. ``bucket_ms``,
    ``permit_ttl_ms``, ``deadline_ms`` (when a running call is judged: the smaller of
    ``slow_call_ms`` and ``call_timeout_ms`` that is set, 0 = never), ``slot_lease_ms``,
    ``tracked`` (calls in flight are counted as bulkhead slots: a cap or a deadline is set)
    and ``run_times`` (how many failure times a run keeps, see ``CircuitState.run``) are
    derived.
    """

    mode: str = ENFORCED
    failure_threshold: int = 5
    failure_rate_threshold: int = 0
    window_seconds: int = 60
    minimum_calls: int = 10
    slow_call_ms: int = 0
    recovery_timeout: float = 60.0
    backoff_multiplier: float = 1.0
    max_recovery_timeout: float = 600.0
    half_open_max_calls: int = 1
    success_threshold: int = 1
    max_concurrent_calls: int = 0
    call_timeout_ms: int = 0
    version: int = 0
    bucket_ms: int = field(init=False, repr=False, compare=False)
    permit_ttl_ms: int = field(init=False, repr=False, compare=False)
    deadline_ms: int = field(init=False, repr=False, compare=False)
    slot_lease_ms: int = field(init=False, repr=False, compare=False)
    tracked: bool = field(init=False, repr=False, compare=False)
    run_times: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        # One tenth of the window, rounded up, never 0.
        bucket_ms = max(1, math.ceil(self.window_seconds * 1000 / BUCKETS))
        object.__setattr__(self, "bucket_ms", bucket_ms)
        limits = [ms for ms in (self.slow_call_ms, self.call_timeout_ms) if ms > 0]
        permit_ttl_ms = max(MIN_PERMIT_TTL_MS, 2 * max(limits, default=0))
        object.__setattr__(self, "permit_ttl_ms", permit_ttl_ms)
        object.__setattr__(self, "deadline_ms", min(limits, default=0))
        lease = max(MIN_SLOT_LEASE_MS, 2 * max(limits, default=0))
        object.__setattr__(self, "slot_lease_ms", lease)
        object.__setattr__(self, "tracked", bool(self.max_concurrent_calls or limits))
        # Derived once: min()/max() parse keyword arguments on every call (CPython 3.11), which
        # cost a failing call some 2,700 instructions when done per failure.
        object.__setattr__(self, "run_times", min(RUN_TIMES, max(1, self.failure_threshold)))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Policy:
        """Build from a dict (settings, a model's fields); unknown keys are ignored."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.init and f.name in values and values[f.name] is not None:
                caster: Callable[[Any], Any] = type(f.default) if f.name != "mode" else str
                kwargs[f.name] = caster(values[f.name])
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}


# Not frozen: a frozen dataclass's __init__ goes through object.__setattr__ per field, which
# made building a ticket cost more than a whole rejected call. Tickets are never mutated.
@dataclass(slots=True)
class Ticket:
    """The answer to ``acquire``: whether the call may run, and what to hand back to ``record``.

    ``state``/``generation``/``epoch`` are the circuit's at acquire time (a result counts only
    if both generation and epoch still match, so a circuit re-created under a new epoch after
    its stored state was lost never counts a ticket of the old one; ``""`` = issued by no stored
    circuit, never counted); ``permit`` is the half-open trial permit id (``None`` when closed
    or rejected); ``retry_after_ms`` is set on rejection; ``monitor_rejected`` marks a
    monitor-mode call that enforced mode would have rejected (its outcome is ignored);
    ``transitions`` are those the acquire itself performed (``half_opened``); ``slot`` is the
    call's bulkhead slot while it runs (``None``: not tracked), to give back with
    ``return_slot`` whatever the outcome; ``over_cap`` marks a monitor-mode call that the
    bulkhead would have refused (its outcome counts). Closed tickets without a slot are shared
    between calls of one generation: treat every ticket as read-only.
    """

    circuit: str
    admitted: bool
    state: str
    generation: int
    permit: str | None = None
    retry_after_ms: int = 0
    monitor_rejected: bool = False
    transitions: tuple[Transition, ...] = ()
    epoch: str = ""
    slot: str | None = None
    over_cap: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change; ``id`` (``"<epoch>:<generation>"``) is unique forever per circuit.

    ``failure_count`` (max of consecutive failures and failures in the window) and
    ``failure_rate`` (percent of failed calls in the window, ``None`` without calls) describe
    the circuit right after the change; ``retry_after_ms`` is the open time for ``opened``.
    """

    id: str
    circuit: str
    kind: str
    from_state: str
    to_state: str
    generation: int
    at_ms: int
    failure_count: int = 0
    failure_rate: float | None = None
    retry_after_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> Transition:
        values = json.loads(data)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def new_epoch() -> str:
    return secrets.token_hex(6)


@dataclass(slots=True)
class CircuitState:
    """Everything the backend stores for one circuit; ``to_fields`` is the Redis hash layout.

    Hash fields (all integers unless noted; absent fields take the defaults below):

    - ``state`` (str): ``closed`` | ``open`` | ``half_open``.
    - ``epoch`` (str): random id chosen when the state is first created; transition ids are
      ``"<epoch>:<generation>"`` so an emptied store never reissues an id.
    - ``generation``: +1 on every transition; tickets carry it (and the epoch), results of other
      generations or epochs are ignored.
    - ``consecutive_failures``: counted failures in a row (closed and half-open). A counted
      success ends the run of failures *dated* at or before it: usually all of them (0), but a
      success that lands late (a deferred success of another process, see docs/redis.md)
      leaves the failures made after its own time counted.
    - ``run`` (str): comma-separated times (epoch ms) of the newest closed-state failures of the
      current run, in the order recorded (in memory a list, appended to in place); at most
      ``Policy.run_times`` (``min(RUN_TIMES, max(1, failure_threshold))``) are kept. A closed
      success dated ``t`` drops those ``<= t`` and the run then counts the rest; if it drops none
      (every kept failure is newer), the count is left as it is. Empty or absent: no run known
      (a success then sets the count to 0).
    - ``trips``: openings since the last full close (``closed``/``reset`` set it to 0); drives
      backoff.
    - ``opened_at_ms`` / ``open_until_ms``: when the circuit last opened and when a trial may
      start (epoch ms, 0 = never); kept while half-open, zeroed on close.
    - ``half_open_successes``: successful trials in the current half-open period.
    - ``permit_seq``: last issued permit number (permit ids are ``"p<permit_seq>"``).
    - ``permit:<id>``: one field per live half-open permit, value = expiry in epoch ms.
    - ``bucket_ms``: bucket width the window was built with (0 = none yet); a policy with a
      different ``window_seconds`` clears the window.
    - ``win_head``: absolute index (``now_ms // bucket_ms``) of the newest bucket.
    - ``win_calls`` / ``win_failures``: running totals over the 10 buckets.
    - ``c0``..``c9`` / ``f0``..``f9``: calls / failures of bucket slot ``index % 10``.

    The window only counts calls made while closed; it stays frozen while open or half-open
    and is cleared (with ``consecutive_failures``) by ``closed`` and ``reset``.

    Not in the hash: ``slots`` (bulkhead slot id -> lease expiry ms, one per tracked call in
    flight; Redis keeps them in the circuit's ``:slots`` sorted set) and ``slot_seq`` (the
    last slot number issued here). Transitions and resets never touch them: a call that is
    running holds its slot until it ends, whatever happens to the circuit meanwhile.
    """

    circuit: str
    state: str = CLOSED
    epoch: str = field(default_factory=new_epoch)
    generation: int = 0
    consecutive_failures: int = 0
    run: list[int] = field(default_factory=list)
    trips: int = 0
    opened_at_ms: int = 0
    open_until_ms: int = 0
    half_open_successes: int = 0
    permit_seq: int = 0
    permits: dict[str, int] = field(default_factory=dict)
    bucket_ms: int = 0
    win_head: int = 0
    win_calls: int = 0
    win_failures: int = 0
    calls: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    failures: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    # Stored apart from the hash (see above), so not part of equality with its fields.
    slots: dict[str, int] = field(default_factory=dict, compare=False)
    slot_seq: int = field(default=0, compare=False)
    # Not stored: a cache of the shared ticket for the current closed generation.
    closed_ticket: Ticket | None = field(default=None, repr=False, compare=False)

    def clear_window(self, bucket_ms: int) -> None:
        self.bucket_ms = bucket_ms
        self.win_head = self.win_calls = self.win_failures = 0
        self.calls = [0] * BUCKETS
        self.failures = [0] * BUCKETS

    def clear_counters(self) -> None:
        """What ``closed`` and ``reset`` clear (``permit_seq`` and the window width survive)."""
        self.clear_window(self.bucket_ms)
        self.consecutive_failures = self.trips = self.half_open_successes = 0
        self.run = []
        self.opened_at_ms = self.open_until_ms = 0
        self.permits.clear()

    def roll(self, index: int) -> None:
        """Advance the newest bucket to ``index``, emptying the slots that fall out."""
        if index - self.win_head >= BUCKETS:
            self.clear_window(self.bucket_ms)
        else:
            for i in range(self.win_head + 1, index + 1):
                slot = i % BUCKETS
                self.win_calls -= self.calls[slot]
                self.win_failures -= self.failures[slot]
                self.calls[slot] = self.failures[slot] = 0
        self.win_head = index

    def window_totals(self, bucket_ms: int, now_ms: int) -> tuple[int, int]:
        """(calls, failures) in the window as of ``now_ms``, without modifying anything."""
        if self.bucket_ms != bucket_ms or not self.win_calls:
            return 0, 0
        index = now_ms // bucket_ms
        if index <= self.win_head:
            return self.win_calls, self.win_failures
        if index - self.win_head >= BUCKETS:
            return 0, 0
        calls, failures = self.win_calls, self.win_failures
        for i in range(self.win_head + 1, index + 1):
            calls -= self.calls[i % BUCKETS]
            failures -= self.failures[i % BUCKETS]
        return calls, failures

    def to_fields(self) -> dict[str, str | int]:
        """The flat Redis-hash form described in the class docstring."""
        fields: dict[str, str | int] = {name: getattr(self, name) for name in _SCALARS}
        fields["run"] = ",".join(map(str, self.run))
        for i in range(BUCKETS):
            fields[f"c{i}"] = self.calls[i]
            fields[f"f{i}"] = self.failures[i]
        for permit, expires in self.permits.items():
            fields[PERMIT_PREFIX + permit] = expires
        return fields

    @classmethod
    def from_fields(cls, circuit: str, fields: dict[Any, Any]) -> CircuitState:
        """Inverse of ``to_fields``; accepts bytes keys/values as returned by redis-py."""
        values = {_text(k): _text(v) for k, v in fields.items()}
        state = cls(circuit)
        for name in _SCALARS:
            if name in values:
                current = getattr(state, name)
                setattr(
                    state, name, values[name] if isinstance(current, str) else int(values[name])
                )
        state.run = [int(t) for t in values.get("run", "").split(",") if t]
        for i in range(BUCKETS):
            state.calls[i] = int(values.get(f"c{i}", 0))
            state.failures[i] = int(values.get(f"f{i}", 0))
        state.permits = {
            key[len(PERMIT_PREFIX) :]: int(value)
            for key, value in values.items()
            if key.startswith(PERMIT_PREFIX)
        }
        return state


_SCALARS = (
    "state",
    "epoch",
    "generation",
    "consecutive_failures",
    "trips",
    "opened_at_ms",
    "open_until_ms",
    "half_open_successes",
    "permit_seq",
    "bucket_ms",
    "win_head",
    "win_calls",
    "win_failures",
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
