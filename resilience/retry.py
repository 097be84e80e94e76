"""Retries inside the breaker (tenacity): exponential backoff, full jitter, transient errors only.

The decorator layer calls, with the breaker's permit already held, so that one logical call is
one outcome::

    call_with_retries(func, args, kwargs, retry, should_stop=None, *, sleep=None) -> result
    await acall_with_retries(func, args, kwargs, retry, should_stop=None, *, sleep=None)

- ``retry`` is any object with the integer attributes ``retry_attempts`` (extra attempts after
  the first; 0 calls ``func`` once, with no tenacity overhead), ``retry_backoff_ms`` (the first
  delay's upper bound) and ``retry_max_backoff_ms`` (cap of any one delay): a
  ``resilience.policies.ResolvedPolicy`` fits.
- ``should_stop()`` (sync, no arguments) returns True once the circuit has opened; it is asked
  after every retryable failure and again after every sleep, and when it says so the last error
  is re-raised at once.
- Only transient errors are retried (``is_transient``); anything else propagates on the first
  attempt. A ``retry_after`` hint (seconds) on the error, e.g. from an HTTP ``Retry-After``
  header, lengthens the delay; a hint longer than ``retry_max_backoff_ms`` ends the retries.
- ``sleep`` replaces ``time.sleep`` / ``asyncio.sleep`` (tests).

Whatever the attempts do, the caller sees either the first successful result or the last error
itself (never a ``tenacity.RetryError``).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception
from tenacity.wait import wait_random_exponential

from resilience.exceptions import ResilienceError

__all__ = ["TransientError", "acall_with_retries", "call_with_retries", "is_transient"]


class RetrySettings(Protocol):
    # Read-only: a frozen ResolvedPolicy (or a BreakerPolicy row) satisfies it.
    @property
    def retry_attempts(self) -> int: ...
    @property
    def retry_backoff_ms(self) -> int: ...
    @property
    def retry_max_backoff_ms(self) -> int: ...


class TransientError(ResilienceError):
    """Raise (or subclass) this to mark a failure as worth retrying.

    ``retry_after`` (seconds) is the earliest moment the next attempt should be made, when the
    remote side said so.
    """

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Module name -> attribute names of exception classes that mean "the remote side was unreachable
# or too slow". Looked up only in modules already imported: if a library is not loaded, none of
# its exceptions can be in flight.
_LIBRARY_TRANSIENTS = {
    "requests": ("ConnectionError", "Timeout"),
    "httpx": ("TimeoutException", "NetworkError", "RemoteProtocolError"),
    "urllib3.exceptions": ("TimeoutError", "NewConnectionError", "ProtocolError"),
}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt.

    An explicit ``exc.transient`` attribute (True/False) wins; otherwise ``TransientError``,
    the built-in ``ConnectionError``/``TimeoutError`` and the connection and timeout errors of
    requests, httpx and urllib3 are transient.
    """
    marked = getattr(exc, "transient", None)
    if marked is not None:
        return bool(marked)
    if isinstance(exc, TransientError | ConnectionError | TimeoutError):
        return True
    for module_name, names in _LIBRARY_TRANSIENTS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return True
    return False


def retry_hint(exc: BaseException | None) -> float:
    """The error's ``retry_after`` in seconds (0 when absent or not a finite, positive number)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return max(0.0, float(value))


class _Attempts:
    """The tenacity options for one logical call, and the "circuit opened" bookkeeping."""

    def __init__(self, retry: RetrySettings, should_stop: Callable[[], bool] | None) -> None:
        self.attempts = 1 + max(0, int(retry.retry_attempts))
        self.cap = max(0, int(retry.retry_max_backoff_ms)) / 1000
        base = max(0, int(retry.retry_backoff_ms)) / 1000
        self.jitter = wait_random_exponential(multiplier=base, max=self.cap)
        self.should_stop = should_stop
        self.last: BaseException | None = None
        self.stopped = False

    def options(self) -> dict[str, Any]:
        return {
            "retry": retry_if_exception(is_transient),
            "wait": self.wait,
            "stop": self.stop,
            "reraise": True,
        }

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return max(self.jitter(state), retry_hint(exc))

    def stop(self, state: RetryCallState) -> bool:
        if self.stopped or state.attempt_number >= self.attempts:
            return True
        if retry_hint(state.outcome.exception() if state.outcome else None) > self.cap:
            return True  # the server asked for a longer pause than we may wait
        return self.circuit_opened()

    def circuit_opened(self) -> bool:
        self.stopped = self.stopped or bool(self.should_stop and self.should_stop())
        return self.stopped

    def before_attempt(self) -> None:
        # After a sleep: if the circuit opened meanwhile, fail with the last real error instead
        # of making another call (it is re-raised and `stop` ends the loop).
        if self.last is not None and self.circuit_opened():
            raise self.last

    def failed(self, exc: BaseException) -> None:
        self.last = exc


def call_with_retries(
    func: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    retry: RetrySettings,
    should_stop: Callable[[], bool] | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
) -> Any:
    """Call ``func(*args, **kwargs)``, retrying transient errors per ``retry`` (see module doc)."""
    if retry.retry_attempts <= 0:
        return func(*args, **kwargs)
    attempts = _Attempts(retry, should_stop)

    def attempt() -> Any:
        attempts.before_attempt()
        try:
            return func(*args, **kwargs)
        except BaseException as exc:
            attempts.failed(exc)
            raise

    return Retrying(sleep=sleep or time.sleep, **attempts.options())(attempt)


async def acall_with_retries(
    func: Callable[..., Awaitable[Any]],
    args: tuple,
    kwargs: dict,
    retry: RetrySettings,
    should_stop: Callable[[], bool] | None = None,
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Any:
    """Async twin of ``call_with_retries`` for a coroutine function; sleeps without blocking."""
    if retry.retry_attempts <= 0:
        return await func(*args, **kwargs)
    attempts = _Attempts(retry, should_stop)

    async def attempt() -> Any:
        attempts.before_attempt()
        try:
            return await func(*args, **kwargs)
        except BaseException as exc:
            attempts.failed(exc)
            raise

    return await AsyncRetrying(sleep=sleep or asyncio.sleep, **attempts.options())(attempt)
