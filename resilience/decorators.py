"""``circuit_breaker`` and ``breaker``: protect functions, coroutines, generators and blocks."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.core.exceptions import ValidationError

from resilience import stats
from resilience.backends import get_backend
from resilience.conf import settings as conf
from resilience.engine_types import DISABLED, FORCED_OPEN
from resilience.exceptions import CircuitOpenError
from resilience.policies import ResolvedPolicy, registry
from resilience.retry import acall_with_retries, call_with_retries
from resilience.validators import validate_circuit_name

# Not failures, and never successes: the call did not finish. A half-open permit is returned.
# An inner breaker's rejection is not this circuit's failure either.
_NOT_FAILURES = (
    CircuitOpenError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
)

_Call = tuple[ResolvedPolicy, Any, int, Any] | None


def _emit(name: str, transitions: Any, error: BaseException | None = None, **kwargs: Any) -> None:
    from resilience import events  # the events layer sits above this one

    events.emit(name, list(transitions), error=error, **kwargs)


class Breaker:
    """A named circuit: call it as a decorator, or use it as a (async) context manager.

    Policies are looked up on every call (one dict lookup), so an admin edit applies to
    existing breakers without re-decorating anything.
    """

    def __init__(
        self,
        name: str,
        *,
        fallback: Callable[..., Any] | None = None,
        ignore: tuple[type[BaseException], ...] = (),
        record: tuple[type[BaseException], ...] = (),
        is_failure: Callable[[Any], bool] | None = None,
    ) -> None:
        try:
            validate_circuit_name(name)
        except ValidationError as exc:
            raise ValueError(
                f"invalid circuit name {str(name)[:100]!r}: {exc.messages[0]}"
            ) from None
        self.name = name
        self.fallback = fallback
        self.ignore = tuple(ignore)
        self.record = tuple(record)
        self.is_failure = is_failure
        self._counts = stats.counters(name)
        self._epoch = -1
        self._resolved: ResolvedPolicy | None = None
        self._calls: ContextVar[tuple[_Call, ...]] = ContextVar(f"resilience:{name}", default=())

    def _resolve(self) -> ResolvedPolicy:
        epoch = registry.epoch  # read first: an invalidation racing with get() wins
        self._resolved = resolved = registry.get(self.name)
        self._epoch = epoch
        return resolved

    def __repr__(self) -> str:
        return f"<Breaker {self.name!r}>"

    # --- the protocol every wrapper uses --------------------------------------------------------

    def _enter(self) -> _Call:
        """Admit one call or raise ``CircuitOpenError``; None means "not tracked"."""
        if not conf.ENABLED:
            return None
        if self._epoch == registry.epoch:
            resolved = self._resolved
        else:
            resolved = self._resolve()
        mode = resolved.mode
        if mode == DISABLED:
            return None
        if mode == FORCED_OPEN:
            self._counts[stats.REJECTED] += 1
            raise CircuitOpenError(self.name, resolved.policy.recovery_timeout, FORCED_OPEN)
        backend = get_backend()
        ticket = backend.acquire(self.name, resolved.policy)
        if ticket.transitions:
            _emit(self.name, ticket.transitions)
        if not ticket.admitted:
            self._counts[stats.REJECTED] += 1
            raise CircuitOpenError(self.name, ticket.retry_after_ms / 1000, ticket.state)
        # Duration only matters to slow-call detection: skip the clock when that rule is off.
        # It is the backend's clock, so tests drive slow calls with a ManualClock.
        started = backend.clock.now_ms() if resolved.policy.slow_call_ms else 0
        return resolved, ticket, started, backend

    def _exit(self, call: _Call, exc: BaseException | None = None, result: Any = None) -> bool:
        """Report how an admitted call ended; returns True when it counted as a failure."""
        if call is None:
            return False
        resolved, ticket, started, backend = call
        if exc is not None:
            if not self._exception_counts(exc, resolved):
                self._counts[stats.IGNORED] += 1
                if ticket.permit is not None:
                    backend.release(ticket, resolved.policy)
                return False
            failed = True
        elif self.is_failure is None:
            failed = False
        else:
            failed = self._result_failed(result)
        self._counts[failed] += 1  # stats.SUCCESS == 0, stats.FAILURE == 1
        duration_ms = max(0, backend.clock.now_ms() - started) if started else 0
        transitions = backend.record(ticket, resolved.policy, not failed, duration_ms)
        if transitions:
            _emit(self.name, transitions, exc)
        return failed

    def _opened(self) -> bool:
        """Whether the circuit opened meanwhile (asked between retries, never per call)."""
        return self.snapshot()["state"] in ("open", FORCED_OPEN)

    def _result_failed(self, result: Any) -> bool:
        if self.is_failure is None:
            return False
        try:
            return bool(self.is_failure(result))
        except Exception:  # a broken predicate must not leak a half-open permit
            return True

    def _exception_counts(self, exc: BaseException, resolved: ResolvedPolicy) -> bool:
        if isinstance(exc, _NOT_FAILURES + self.ignore + resolved.ignore):
            return False
        recorded = self.record + resolved.record
        return not recorded or isinstance(exc, recorded)

    # --- decorator ----------------------------------------------------------------------------

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(func):
            return self._wrap_async_generator(func)
        if inspect.iscoroutinefunction(func):
            return self._wrap_coroutine(func)
        if inspect.isgeneratorfunction(func):
            return self._wrap_generator(func)
        return self._wrap_function(func)

    def _rejected(self, exc: CircuitOpenError, args: tuple, kwargs: dict) -> Any:
        if self.fallback is None:
            raise exc
        return self.fallback(exc, *args, **kwargs)

    def _wrap_function(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                call = self._enter()
            except CircuitOpenError as exc:
                return self._rejected(exc, args, kwargs)
            try:
                if call is not None and call[0].retry_attempts:
                    result = call_with_retries(func, args, kwargs, call[0], self._opened)
                else:
                    result = func(*args, **kwargs)
            except BaseException as exc:
                if self._exit(call, exc) and self.fallback is not None:
                    return self.fallback(exc, *args, **kwargs)
                raise
            self._exit(call, None, result)
            return result

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def _wrap_coroutine(self, func: Callable[..., Any]) -> Callable[..., Any]:
        async def fall_back(exc: BaseException, args: tuple, kwargs: dict) -> Any:
            result = self.fallback(exc, *args, **kwargs)  # type: ignore[misc]
            return await result if inspect.isawaitable(result) else result

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                call = self._enter()
            except CircuitOpenError as exc:
                if self.fallback is None:
                    raise
                return await fall_back(exc, args, kwargs)
            try:
                if call is not None and call[0].retry_attempts:
                    result = await acall_with_retries(func, args, kwargs, call[0], self._opened)
                else:
                    result = await func(*args, **kwargs)
            except BaseException as exc:
                if self._exit(call, exc) and self.fallback is not None:
                    return await fall_back(exc, args, kwargs)
                raise
            self._exit(call, None, result)
            return result

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def _wrap_generator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # The call succeeds when the consumer exhausts the generator and fails if it raises
        # mid-stream; closing it early (GeneratorExit) is neither.
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                call = self._enter()
            except CircuitOpenError as exc:
                return (yield from self._rejected(exc, args, kwargs))
            try:
                result = yield from func(*args, **kwargs)
            except BaseException as exc:
                self._exit(call, exc)
                raise
            self._exit(call, None, None)
            return result

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def _wrap_async_generator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                call = self._enter()
            except CircuitOpenError as exc:
                replacement = self._rejected(exc, args, kwargs)
                if hasattr(replacement, "__aiter__"):
                    async for item in replacement:
                        yield item
                else:
                    for item in replacement:
                        yield item
                return
            try:
                async for item in func(*args, **kwargs):
                    yield item
            except BaseException as exc:
                self._exit(call, exc)
                raise
            self._exit(call, None, None)

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    # --- context managers -----------------------------------------------------------------------

    def __enter__(self) -> Breaker:
        call = self._enter()
        self._calls.set((*self._calls.get(), call))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        stack = self._calls.get()
        self._calls.set(stack[:-1])
        self._exit(stack[-1], exc)

    async def __aenter__(self) -> Breaker:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- inspection and manual control ------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.snapshot()["state"]

    def snapshot(self) -> dict[str, Any]:
        resolved = registry.get(self.name)
        snap = dict(get_backend().snapshot(self.name, resolved.policy))
        snap["name"] = self.name
        snap["mode"] = resolved.mode
        if resolved.mode in (FORCED_OPEN, DISABLED):
            snap["state"] = resolved.mode
        return snap

    def reset(self, actor: Any = None, reason: str = "") -> dict[str, Any]:
        """Close the circuit and clear its counters everywhere; records a ``reset`` event."""
        resolved = registry.get(self.name)
        transitions = get_backend().reset(self.name, resolved.policy)
        _emit(self.name, transitions, actor=actor, reason=reason, sync=True)
        return self.snapshot()

    def force_open(self, actor: Any = None, reason: str = "") -> dict[str, Any]:
        """Kill switch: set the policy's mode to ``forced_open`` (persisted) and record it."""
        return self._set_mode(FORCED_OPEN, "forced_open", actor, reason)

    def release(self, actor: Any = None, reason: str = "") -> dict[str, Any]:
        """Undo ``force_open`` (or monitor/disabled): mode back to ``enforced``; recorded."""
        return self._set_mode("enforced", "released", actor, reason)

    def _set_mode(self, mode: str, kind: str, actor: Any, reason: str) -> dict[str, Any]:
        from resilience import events
        from resilience.models import BreakerPolicy
        from resilience.policies import default_row

        before = self.state
        row = BreakerPolicy.objects.filter(name=self.name).first()
        if row is None:
            row = default_row(self.name)
            row.mode = mode
            row.save()
        else:  # only the mode: a threshold edit saved at the same moment must survive
            row.mode = mode
            row.save(update_fields=["mode"])
        events.record_action(
            self.name, kind, actor=actor, reason=reason, from_state=before, to_state=self.state
        )
        return self.snapshot()


def breaker(name: str, **options: Any) -> Breaker:
    """The breaker of circuit ``name`` for ``with``/``async with``, inspection and control."""
    return Breaker(name, **options)


def circuit_breaker(
    name: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator protecting a function, coroutine function, generator or async generator."""
    return Breaker(name, **options)
