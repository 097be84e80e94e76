"""Exceptions raised by django-resilience."""

from __future__ import annotations


class ResilienceError(Exception):
    """Base class for every error raised by django-resilience."""


class CircuitOpenError(ResilienceError):
    """A protected call was rejected because its circuit is open."""

    def __init__(self, circuit: str, retry_after: float = 0.0, state: str = "open") -> None:
        self.circuit = circuit
        self.retry_after = max(0.0, float(retry_after))
        self.state = state
        super().__init__(f"circuit {circuit!r} is {state}; retry after {self.retry_after:.1f}s")

    def __reduce__(self):  # picklable across Celery/multiprocessing boundaries
        return (type(self), (self.circuit, self.retry_after, self.state))


class BackendError(ResilienceError):
    """The state backend could not be reached; never escapes into a protected call."""


class UnknownCircuitError(ResilienceError, LookupError):
    """An operator named a circuit that has no policy."""
