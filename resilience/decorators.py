"""``circuit_breaker`` and ``breaker``: protect functions, coroutines, generators and blocks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterable
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError

from resilience import recorder, series, stats
from resilience.backends import get_backend
from resilience.conf import settings as conf
from resilience.engine_types import BULKHEAD_FULL, DISABLED, FORCED_OPEN, Ticket
from resilience.exceptions import BulkheadFullError, CallTimeoutError, CircuitOpenError
from resilience.policies import registry
from resilience.retry import acall_with_retries, call_with_retries
from resilience.route import PASS, REJECT, TRACK, Admitted, Call, Route
from resilience.stats import (
    BULKHEAD_REJECTED,
    FAILURE,
    IGNORED,
    OVER_CAP,
    OVERDUE,
    REJECTED,
    SAMPLE_EVERY,
    SUCCESS,
)
from resilience.validators import validate_circuit_name
from resilience.watchdog import Watch, watchdog
from resilience.wrappers import make_coroutine, make_function

# What the generator and ``with`` forms report: a stream or a block has no return value for
# ``is_failure`` to judge; it succeeds by finishing without raising.
_NO_RESULT = object()

# Set on the wrapper of a generator ("sync") or async generator ("async") function: the wrapper
# itself is a plain function returning the stream, and a breaker stacked on top must still
# treat it as a stream.
_STREAM_KIND = "_resilience_stream"


def _as_async_stream(replacement: Any) -> Any:
    """A fallback's answer for an async generator: as it is when it is an async iterable, else
    its plain iterable as the async iterable the generator would have been."""
    return replacement if hasattr(replacement, "__aiter__") else _aiter(replacement)


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _emit(name: str, transitions: Any, error: BaseException | None = None, **kwargs: Any) -> None:
    # To the events layer, which sits above this one (see resilience.recorder).
    recorder.emit(name, list(transitions), error=error, **kwargs)


class Breaker:
    """A named circuit: call it as a decorator, or use it as a (async) context manager.

    Every call checks that its route (``resilience.route``) is as new as the policy registry,
    so an admin edit applies to existing breakers without re-decorating anything.
    """

    # Whether coroutines are cancelled at the policy's call_timeout_ms; the HTTP transports
    # turn it off, since they send the deadline as the request timeout and raise their
    # library's own timeout error (the watchdog still judges a call running past it).
    cancels_coroutines = True

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
        self._route = Route(-1, PASS, None, self)  # stale at once: built on the first call
        self._calls: ContextVar[tuple[Call, ...]] = ContextVar(f"resilience:{name}", default=())

    def _reroute(self) -> Route:
        epoch = registry.epoch  # read first: an invalidation racing with get() wins
        # ENABLED needs no check per call: a settings change also bumps the registry's epoch.
        resolved = registry.get(self.name) if conf.ENABLED else None
        if resolved is None or resolved.mode == DISABLED:
            action = PASS
        else:
            action = REJECT if resolved.mode == FORCED_OPEN else TRACK
        self._route = route = Route(epoch, action, resolved, self)
        return route

    def __repr__(self) -> str:
        return f"<Breaker {self.name!r}>"

    # --- the protocol every wrapper uses --------------------------------------------------------

    def _enter(self) -> Call:
        """Ask to run one call: ``(route, ticket, started, watch)``, where the ticket may be a
        rejection (``_refused()`` then gives the error to raise); None means "not counted"."""
        route = self._route
        backend = route.backend
        if route.epoch != registry.epoch or (backend is not None and backend is not get_backend()):
            route = self._reroute()
        if route.action:
            return None if route.action == PASS else (route, route.refusal, 0, None)
        ticket = self._acquire(route)
        if not ticket.admitted:
            return route, ticket, 0, None
        if not route.tracked:  # timed 1 in SAMPLE_EVERY, for the history's latency
            counts = self._counts
            sampled = not (counts[SUCCESS] + counts[FAILURE]) % SAMPLE_EVERY
            return route, ticket, route.clock.now_ms() if sampled else 0, None
        started = route.clock.now_ms()
        watch = watchdog.watch(route.backend, route.policy, ticket, started, self._overdue)  # type: ignore[arg-type]  # tracked: has one
        return route, ticket, started, watch

    def _acquire(self, route: Route) -> Ticket:
        ticket = route.acquire(route.policy)
        if ticket.transitions:
            _emit(self.name, ticket.transitions)
        if ticket.over_cap:
            self._counts[OVER_CAP] += 1
        return ticket

    def _refused(self, route: Route, ticket: Ticket) -> CircuitOpenError:
        """The error for a call whose ticket was not admitted (counted as rejected)."""
        if route.action == REJECT:
            self._counts[REJECTED] += 1
            return CircuitOpenError(self.name, route.policy.recovery_timeout, FORCED_OPEN)
        if ticket.state == BULKHEAD_FULL:
            self._counts[BULKHEAD_REJECTED] += 1
            return BulkheadFullError(self.name, ticket.retry_after_ms / 1000)
        self._counts[REJECTED] += 1
        return CircuitOpenError(self.name, ticket.retry_after_ms / 1000, ticket.state)

    def _ended(self, route: Route, ticket: Ticket, watch: Watch | None) -> bool:
        """Close a call's books: its watch and its bulkhead slot. True when the watchdog has
        judged it already (its outcome is then not counted a second time)."""
        judged = watch is not None and watchdog.end(watch)
        if ticket.slot is not None:
            route.backend.return_slot(ticket, route.policy)  # type: ignore[union-attr]  # tracked: has one
        return judged

    def _overdue(self, watch: Watch, elapsed_ms: int) -> None:
        """The watchdog's report: a call still running past its deadline is one failure now."""
        self._counts[FAILURE] += 1
        self._counts[OVERDUE] += 1
        policy = watch.policy
        # Judged when elapsed_ms reached the deadline: slow if that is slow_call_ms.
        stats.timed(self._counts, elapsed_ms, 0 < policy.slow_call_ms <= elapsed_ms)
        transitions = watch.backend.record(watch.ticket, policy, False, elapsed_ms)
        if transitions:
            limit = "call_timeout_ms" if policy.deadline_ms == policy.call_timeout_ms else "slow"
            error = TimeoutError(f"still running after {elapsed_ms} ms ({limit})")
            _emit(self.name, transitions, error)

    # An admitted call's outcome: ``route, ticket, started, watch`` are its ``Call`` (the
    # wrappers pass them apart: a call admitted by the route's lane has no tuple).

    def _succeeded(
        self, route: Route, ticket: Ticket, started: int, watch: Watch | None, result: Any
    ) -> None:
        """Report that an admitted call returned ``result`` (a failure if ``is_failure`` says)."""
        # The books first: whatever is_failure does (even raise a BaseException), the slot
        # goes back and the watchdog stops looking at the call.
        if watch is not None and self._ended(route, ticket, watch):
            return  # judged while running: counted then
        failed = (
            self.is_failure is not None and result is not _NO_RESULT and self._result_failed(result)
        )
        self._counts[failed] += 1  # SUCCESS == 0, FAILURE == 1
        duration_ms = 0
        if started:
            duration_ms = max(0, route.clock.now_ms() - started)
            stats.timed(self._counts, duration_ms, 0 < route.policy.slow_call_ms < duration_ms)
        transitions = route.record(ticket, route.policy, not failed, duration_ms)
        if transitions:
            _emit(self.name, transitions)

    def _failed(
        self, route: Route, ticket: Ticket, started: int, watch: Watch | None, exc: BaseException
    ) -> bool:
        """Report that an admitted call raised ``exc``; True when the call is to be answered by
        the fallback instead (a fallback is set, and ``exc`` counted as a failure)."""
        judged = watch is not None and self._ended(route, ticket, watch)
        counted = route.verdicts.get(type(exc))
        if counted is None:
            counted = route.judge(exc)
        if not counted:
            if not judged:
                self._counts[IGNORED] += 1
            if ticket.permit is not None:
                route.backend.release(ticket, route.policy)  # type: ignore[union-attr]  # tracked: has one
            return False
        if judged:  # counted as a failure at its deadline
            return self.fallback is not None
        self._counts[FAILURE] += 1
        duration_ms = 0
        if started:
            duration_ms = max(0, route.clock.now_ms() - started)
            stats.timed(self._counts, duration_ms, 0 < route.policy.slow_call_ms < duration_ms)
        transitions = route.record(ticket, route.policy, False, duration_ms)
        if transitions:
            _emit(self.name, transitions, exc)
        return self.fallback is not None

    def _opened(self) -> bool:
        """Whether the circuit opened meanwhile (asked between retries, never per call)."""
        return self.snapshot()["state"] in ("open", FORCED_OPEN)

    def _result_failed(self, result: Any) -> bool:
        try:
            return bool(self.is_failure(result))  # type: ignore[misc]
        except Exception:  # a broken predicate must not leak a half-open permit
            return True

    # --- decorator ----------------------------------------------------------------------------

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        stream = getattr(func, _STREAM_KIND, None)
        if stream is None and inspect.isasyncgenfunction(func):
            stream = "async"
        elif stream is None and inspect.isgeneratorfunction(func):
            stream = "sync"
        if stream == "async":
            wrapper = self._wrap_stream(func, self._astart, _as_async_stream)
        elif stream == "sync":
            wrapper = self._wrap_stream(func, self._start, iter)
        elif inspect.iscoroutinefunction(func):
            wrapper = self._wrap_coroutine(func)
        else:
            wrapper = self._wrap_function(func)
        wrapper = functools.wraps(func)(wrapper)
        wrapper.breaker = self  # type: ignore[attr-defined]  # typeshed's _Wrapped declares no attributes
        if stream is not None:
            setattr(wrapper, _STREAM_KIND, stream)
        return wrapper

    # The function and coroutine wrappers are the hot paths: both are compiled from one
    # template (resilience.wrappers), and differ only in ``run`` and ``fall_back``.

    def _wrap_function(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def run(route: Route, args: tuple, kwargs: dict) -> Any:
            # Not ``route.direct``: retries, or a call timeout, which cancels coroutines only.
            if route.retries:
                return call_with_retries(func, args, kwargs, route.resolved, self._opened)
            return func(*args, **kwargs)

        def fall_back(exc: BaseException, args: tuple, kwargs: dict) -> Any:
            return self.fallback(exc, *args, **kwargs)  # type: ignore[misc]

        return make_function(self, func, run, fall_back)

    def _wrap_coroutine(self, func: Callable[..., Any]) -> Callable[..., Any]:
        async def fall_back(exc: BaseException, args: tuple, kwargs: dict) -> Any:
            result = self.fallback(exc, *args, **kwargs)  # type: ignore[misc]
            return await result if inspect.isawaitable(result) else result

        async def attempts(route: Route, args: tuple, kwargs: dict) -> Any:
            if route.retries:
                return await acall_with_retries(func, args, kwargs, route.resolved, self._opened)
            return await func(*args, **kwargs)

        async def run(route: Route, args: tuple, kwargs: dict) -> Any:
            if not route.timeout:  # not direct: retries, then
                return await acall_with_retries(func, args, kwargs, route.resolved, self._opened)
            # The breaker's own deadline: CallTimeoutError, always a failure (an outer timeout's
            # CancelledError is not one; the watchdog judges such a hang at its deadline).
            deadline = asyncio.timeout(route.timeout)
            try:
                async with deadline:
                    return await attempts(route, args, kwargs)
            except TimeoutError as exc:
                if deadline.expired():
                    raise CallTimeoutError(
                        f"circuit {self.name!r}: call cancelled after {route.timeout:g} s "
                        "(call_timeout_ms)"
                    ) from exc
                raise

        return make_coroutine(self, func, run, fall_back)

    # The generator wrappers admit a stream when the generator function is *called*, before its
    # first item: a view that returns ``StreamingHttpResponse(stream())`` then raises the
    # refusal while the middleware can still answer 503 (at the first item the headers are
    # already sent). The admitted call holds its ticket (and any half-open permit) until the
    # stream ends: it succeeds when the consumer exhausts it and fails if it raises mid-stream;
    # closing it early (GeneratorExit), a cancellation, or dropping it unfinished (garbage
    # collection closes it) is neither and gives a half-open permit back. The returned stream
    # is primed to its first line (``_start``, ``_astart``) so that even a close() before the
    # first item reaches that code.

    def _wrap_stream(
        self,
        func: Callable[..., Any],
        guard: Callable[[Admitted, Any], Any],
        replace: Callable[[Any], Any],
    ) -> Callable[..., Any]:
        """The wrapper of a generator function (``guard`` is ``_start``) or of an async one
        (``_astart``); ``replace`` turns a fallback's answer into that kind of stream."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self._enter()
            if call is None:
                return func(*args, **kwargs)
            route, ticket = call[0], call[1]
            if not ticket.admitted:
                if self.fallback is None:
                    raise self._refused(route, ticket)
                return replace(self.fallback(self._refused(route, ticket), *args, **kwargs))
            try:
                inner = func(*args, **kwargs)  # runs nothing but binding the arguments
            except BaseException as exc:
                self._failed(*call, exc)
                raise
            return guard(call, inner)

        return wrapper

    def _start(self, call: Admitted, inner: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        stream = self._guarded(call, inner)
        next(stream)  # to the priming yield: never raises
        return stream

    def _guarded(self, call: Admitted, inner: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        try:
            yield None  # the priming step, taken by _start: the consumer never sees it
            result = yield from inner
        except BaseException as exc:
            self._failed(*call, exc)
            raise
        self._succeeded(*call, _NO_RESULT)
        return result

    def _astart(self, call: Admitted, inner: AsyncGenerator[Any, Any]) -> AsyncGenerator[Any, Any]:
        stream = self._aguarded(call, inner)
        # To the priming yield, synchronously: nothing is awaited before it, so the first
        # step finishes at once (StopIteration) without an event loop.
        try:
            stream.asend(None).send(None)
        except StopIteration:
            pass
        return stream

    async def _aguarded(
        self, call: Admitted, inner: AsyncGenerator[Any, Any]
    ) -> AsyncGenerator[Any, Any]:
        try:
            yield None  # the priming step, taken by the wrapper
            # aclosing: an early aclose() or a cancellation runs the inner generator's
            # cleanup (an HTTP stream, a cursor) now, not whenever the loop finalises it.
            async with contextlib.aclosing(inner) as stream:
                async for item in stream:
                    yield item
        except BaseException as exc:
            self._failed(*call, exc)
            raise
        self._succeeded(*call, _NO_RESULT)

    # --- context managers -----------------------------------------------------------------------

    def __enter__(self) -> Breaker:
        call = self._enter()
        if call is not None and not call[1].admitted:
            raise self._refused(call[0], call[1])
        self._calls.set((*self._calls.get(), call))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        stack = self._calls.get()
        self._calls.set(stack[:-1])
        call = stack[-1]
        if call is None:  # not counted (see _enter)
            return
        if exc is None:
            self._succeeded(*call, _NO_RESULT)
        else:
            self._failed(*call, exc)

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

    def history(self, minutes: float = 60) -> list[dict[str, Any]]:
        """The circuit's outcomes over the last ``minutes`` (docs/history.md), oldest first:
        10-second buckets up to 360 minutes, else 1-minute ones. This process's own calls are
        sent to the backend first; ``TypeError``/``ValueError`` for a bad ``minutes``."""
        backend = get_backend()
        series.window(minutes, 0)  # a bad ``minutes`` sends nothing
        backend.flush()  # first: its counts go into the bucket of its own moment, then read
        since_ms, until_ms = series.window(minutes, backend.clock.now_ms())
        return backend.history(self.name, since_ms, until_ms)

    def reset(self, actor: Any = None, reason: str = "") -> dict[str, Any]:
        """Close the circuit and clear its counters everywhere; records a ``reset`` event."""
        resolved = registry.get(self.name)
        transitions = get_backend().reset(self.name, resolved.policy)
        # An "opened" first is a queued success's (see RedisBackend), not the operator's.
        made = [t for t in transitions if t.kind != "reset"]
        _emit(self.name, made, sync=True)  # stored before the reset, in order
        _emit(
            self.name,
            [t for t in transitions if t.kind == "reset"],
            actor=actor,
            reason=reason,
            sync=True,
        )
        return self.snapshot()

    def force_open(
        self, actor: Any = None, reason: str = "", until: datetime | None = None
    ) -> dict[str, Any]:
        """Kill switch: set the policy's mode to ``forced_open`` (persisted) and record it.

        With ``until`` (an aware datetime in the future) it lifts itself at that time, in every
        process, with a ``released`` event without an actor (``BreakerPolicy.release_expired``,
        run by each process's policy refresh thread and by ``events.drain()``). ``ValueError``
        for a naive or past ``until``; nothing is changed then.
        """
        if until is not None:
            if not isinstance(until, datetime) or until.utcoffset() is None:
                raise ValueError(f"until must be an aware datetime, not {until!r}")
            if until <= registry.now():
                raise ValueError(f"until ({until.isoformat()}) is not in the future")
            reason = f"{reason} [until {until.isoformat()}]".strip()
        return self._set_mode(FORCED_OPEN, "forced_open", actor, reason, until)

    def release(self, actor: Any = None, reason: str = "") -> dict[str, Any]:
        """Undo ``force_open`` (or monitor/disabled): mode back to ``enforced``; recorded."""
        return self._set_mode("enforced", "released", actor, reason)

    def _set_mode(
        self, mode: str, kind: str, actor: Any, reason: str, until: datetime | None = None
    ) -> dict[str, Any]:
        before = self.state
        row = registry.model.for_circuit(self.name)  # the saved row, else the defaults
        row.mode = mode
        row.forced_until = until
        with registry.model.audit(actor=actor, reason=reason):  # a policy revision too
            if row.pk is None:
                row.save()
            else:  # only the mode: a threshold edit saved at the same moment must survive
                row.save(update_fields=["mode", "forced_until"])
        recorder.record_action(
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
