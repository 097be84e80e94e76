"""Exceptions raised by django-resilience."""

from __future__ import annotations


class ResilienceError(Exception):
    """Base class for every error raised by django-resilience."""


class CircuitOpenError(ResilienceError):
    """A protected call was rejected because its circuit is open.

    ``CircuitOpenError(circuit, retry_after=0.0, state="open")``, positional arguments only;
    ``circuit``, ``retry_after`` (seconds, a float >= 0) and ``state`` are read from ``args``.
    """

    # Raised on every rejected call, often caught without ever being printed: nothing runs in
    # Python to build one (``args`` is set by BaseException in C; a Python __init__ cost ~1,100
    # of a rejected call's ~7,300 instructions), the attributes are read from ``args`` and the
    # message is formatted in __str__.
    __slots__ = ()
    _default_state = "open"

    @property
    def circuit(self) -> str:
        return self.args[0]

    @property
    def retry_after(self) -> float:
        retry_after = float(self.args[1]) if len(self.args) > 1 else 0.0
        return retry_after if retry_after > 0.0 else 0.0

    @property
    def state(self) -> str:
        return self.args[2] if len(self.args) > 2 else self._default_state

    def __str__(self) -> str:
        return f"circuit {self.circuit!r} is {self.state}; retry after {self.retry_after:.1f}s"

    def __reduce__(self):  # picklable across Celery/multiprocessing boundaries
        return (type(self), (self.circuit, self.retry_after, self.state))


class BulkheadFullError(CircuitOpenError):
    """A protected call was refused because ``max_concurrent_calls`` of its circuit are running.

    A refusal like an open circuit's (``except CircuitOpenError``, ``fallback=``, the
    middleware's 503 and the adapters treat it the same); ``state`` is ``"bulkhead_full"``.
    """

    __slots__ = ()
    _default_state = "bulkhead_full"

    def __str__(self) -> str:
        return (
            f"circuit {self.circuit!r} has its maximum of concurrent calls running; "
            f"retry after {self.retry_after:.1f}s"
        )


class CallTimeoutError(ResilienceError, TimeoutError):
    """A protected coroutine was cancelled at its policy's ``call_timeout_ms``.

    A ``TimeoutError``; always counted as a failure of its circuit (unlike the
    ``CancelledError`` of an outer ``asyncio.timeout()``).
    """


class BackendError(ResilienceError):
    """The state backend could not be reached; never escapes into a protected call."""


class UnknownCircuitError(ResilienceError, LookupError):
    """An operator named a circuit that has no policy."""
