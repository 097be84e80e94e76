"""Exceptions raised by django-resilience."""

from __future__ import annotations


class ResilienceError(Exception):
    """Base class for every error raised by django-resilience."""


class CircuitOpenError(ResilienceError):
    """A protected call was rejected because its circuit is open."""

    # Raised on every rejected call, often caught without ever being printed: the message is
    # formatted in __str__, BaseException.__init__ is skipped (``args`` is set by __new__) and
    # slots spare building an instance dict.
    __slots__ = ("circuit", "retry_after", "state")

    def __init__(self, circuit: str, retry_after: float = 0.0, state: str = "open") -> None:
        retry_after = float(retry_after)
        self.circuit = circuit
        self.retry_after = retry_after if retry_after > 0.0 else 0.0
        self.state = state

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

    def __init__(
        self, circuit: str, retry_after: float = 0.0, state: str = "bulkhead_full"
    ) -> None:
        super().__init__(circuit, retry_after, state)

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
