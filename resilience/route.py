"""``Route``: how a breaker handles its calls between two policy (or backend) changes."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

from resilience import tracing
from resilience.backends import get_backend
from resilience.engine_types import FORCED_OPEN, Ticket
from resilience.exceptions import CallTimeoutError, CircuitOpenError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from resilience.backends.base import Backend, Lane
    from resilience.engine_types import Policy, Transition
    from resilience.policies import ResolvedPolicy
    from resilience.watchdog import Watch

    class _Clock(Protocol):
        def now_ms(self) -> int: ...

    class _Breaker(Protocol):  # resilience.decorators.Breaker, as a route reads it
        name: str
        ignore: tuple[type[BaseException], ...]
        record: tuple[type[BaseException], ...]
        is_failure: Callable[[Any], bool] | None
        cancels_coroutines: bool


# Not failures, and never successes: the call did not finish. A half-open permit is returned.
# An inner breaker's rejection is not this circuit's failure either.
_NOT_FAILURES = (
    CircuitOpenError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
)

# What a breaker does with a call, decided once per route.
TRACK, PASS, REJECT = 0, 1, 2

# A route remembers at most this many exception classes' verdicts (see ``Route.judge``).
VERDICTS_MAX = 64


class Route:
    """How a breaker handles its calls until the policy registry or the backend changes.

    Built once per registry epoch, so that the call path reads prepared attributes instead of
    re-deriving them from the settings, the policy and the backend on every call.
    """

    __slots__ = (
        "acquire",
        "action",
        "backend",
        "by_type",
        "clock",
        "direct",
        "epoch",
        "lane",
        "not_failures",
        "policy",
        "record",
        "recorded",
        "refusal",
        "resolved",
        "retries",
        "timeout",
        "tracked",
        "verdicts",
    )

    # Typed as the call path reads them, which is only where they are set: ``policy`` is None
    # only on a PASS route, ``refusal`` is set only on a REJECT route, and ``resolved``,
    # ``acquire``, ``record`` and ``clock`` are read only on a TRACK route, which always has
    # them (``resolved`` only when ``retries``). The None assignments below are ignored for
    # this reason: the call path does not check for None on every call.
    epoch: int
    action: int
    resolved: ResolvedPolicy
    policy: Policy
    refusal: Ticket
    retries: bool
    not_failures: tuple[type[BaseException], ...]
    recorded: tuple[type[BaseException], ...]
    verdicts: dict[type, bool]
    by_type: bool
    backend: Backend | None
    record: Callable[[Ticket, Policy, bool, int], list[Transition]]
    clock: _Clock
    tracked: bool
    timeout: float
    direct: bool
    lane: Lane | None
    acquire: Callable[[Policy], Ticket]

    def __init__(
        self, epoch: int, action: int, resolved: ResolvedPolicy | None, breaker: _Breaker
    ) -> None:
        self.epoch = epoch
        self.action = action
        self.resolved = resolved  # type: ignore[assignment]
        self.policy = resolved.policy if resolved is not None else None  # type: ignore[assignment]
        # What a forced-open circuit answers every call (see ``Breaker._refused``).
        self.refusal = Ticket(breaker.name, False, FORCED_OPEN, 0) if action == REJECT else None  # type: ignore[assignment]
        self.retries = bool(resolved is not None and resolved.retry_attempts)
        self._set_exception_rules(breaker, resolved)
        self._bind_backend(action)
        # A tracked call (a cap or a deadline) holds a bulkhead slot, is watched while it runs
        # (resilience.watchdog) and is timed on the backend's clock (tests drive slow calls
        # with a ManualClock); only it needs a duration. ``timeout`` (seconds, 0 = none)
        # cancels a coroutine.
        policy = self.policy
        self.tracked = bool(policy is not None and policy.tracked and action == TRACK)
        cancels = policy is not None and breaker.cancels_coroutines
        self.timeout = policy.call_timeout_ms / 1000 if cancels else 0.0
        # Whether a call runs as it is: no retries, and no deadline to cancel a coroutine at
        # (else the wrapper's ``run`` does those; see resilience.wrappers).
        self.direct = not (self.retries or self.timeout)
        # A backend may offer a lane per circuit (the memory backend does): a closed circuit
        # admits, an open one refuses, and a success is counted, without a call into the
        # backend (see MemoryBackend.lane). The wrappers use it for plain calls (not tracked, no
        # retries, no is_failure); a lane of a closed backend is no longer live, and they then
        # go through ``Breaker._enter``.
        plain = not (self.tracked or self.retries or breaker.is_failure is not None)
        self.lane, self.acquire = _admission(self.backend, breaker.name, plain)
        if action != PASS and tracing.enabled():  # decided here, never per call
            _trace(self, breaker.name)

    def _bind_backend(self, action: int) -> None:
        """The backend, its ``record`` and its clock; None unless the route tracks calls."""
        # Only a tracked route touches the backend (a broken backend setting must not break
        # disabled or forced-open circuits).
        backend = get_backend() if action == TRACK else None
        if action == REJECT:
            _feed_history()
        self.backend = backend
        self.record = backend.record if backend is not None else None  # type: ignore[assignment]
        self.clock = backend.clock if backend is not None else None  # type: ignore[assignment]

    def _set_exception_rules(self, breaker: _Breaker, resolved: ResolvedPolicy | None) -> None:
        """Which exceptions are not failures, which alone are recorded, and the cache of
        ``judge``'s answers per exception class: used when isinstance() depends on the class
        alone (plain classes: no metaclass with its own __instancecheck__)."""
        self.not_failures, self.recorded = _exception_classes(breaker, resolved)
        self.verdicts = {}
        self.by_type = all(type(c) is type for c in self.not_failures + self.recorded)

    def judge(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a failure: ``CallTimeoutError`` always; else not when it
        is one of ``not_failures``, nor when ``recorded`` is set and it is none of them.

        The answer is remembered in ``verdicts`` under the exception's class when it depends
        on the class alone, so that the call path asks a dict instead (an ``isinstance`` over
        the route's tuple of classes cost a failing call ~1,700 instructions).
        """
        counted = isinstance(exc, CallTimeoutError) or not (
            isinstance(exc, self.not_failures)
            or (self.recorded and not isinstance(exc, self.recorded))
        )
        kind = type(exc)
        if (
            self.by_type
            and len(self.verdicts) < VERDICTS_MAX
            and not any("__class__" in vars(c) for c in kind.__mro__[:-1])
        ):
            self.verdicts[kind] = counted
        return counted


def _trace(route: Route, name: str) -> None:
    """Send every outcome of ``route``'s calls through ``resilience.tracing``: no lane (whose
    successes never reach ``record``), and a forced-open circuit refuses through ``acquire``
    (the same ``CircuitOpenError`` as a REJECT route raises) instead of without a call."""
    if route.action == REJECT:
        refusal = dataclasses.replace(
            route.refusal, retry_after_ms=round(route.policy.recovery_timeout * 1000)
        )
        route.action, route.acquire = TRACK, lambda policy: refusal
    route.lane = None
    route.acquire = tracing.traced_acquire(route.acquire, name)
    if route.record is not None:  # None: a forced-open route, whose calls never run
        route.record = tracing.traced_record(route.record, name)


def _feed_history() -> None:
    """A forced-open route counts its refusals (``resilience.stats``) without the backend: have
    ``get_backend()`` build it, so that they reach the outcome history even in a process whose
    every call is refused (docs/history.md); not if the backend setting is broken."""
    try:
        get_backend()
    except ImproperlyConfigured:
        pass


def _exception_classes(
    breaker: _Breaker, resolved: ResolvedPolicy | None
) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """What a route never counts as a failure, and what it counts whatever ``is_failure`` says:
    the breaker's own classes, then the policy row's."""
    not_failures = _NOT_FAILURES + breaker.ignore + (resolved.ignore if resolved else ())
    recorded = breaker.record + (resolved.record if resolved else ())
    return not_failures, recorded


def _admission(
    backend: Backend | None, name: str, plain: bool
) -> tuple[Lane | None, Callable[[Policy], Ticket]]:
    """A route's lane (only for ``plain`` calls) and its ``acquire(policy)``: the lane's when
    there is one, else the backend's for circuit ``name``; neither without a backend."""
    if backend is None:
        return None, None  # type: ignore[return-value]
    lane = backend.lane(name)
    if lane is not None:
        return (lane if plain else None), lane.acquire
    return None, functools.partial(backend.acquire, name)


# A call: its route, its ticket (admitted or not), when it started (0: not timed) and its
# watch (None: not tracked); None: not counted at all (disabled circuit, ENABLED off).
Admitted = tuple[Route, Ticket, int, "Watch | None"]
Call = Admitted | None
