"""Celery: a task base class that waits out an open circuit instead of failing or hammering."""

from __future__ import annotations

import random
from typing import Any

from celery import Task
from celery.exceptions import Reject, Retry

from resilience.exceptions import CircuitOpenError

__all__ = ["CIRCUIT_RETRIES_HEADER", "CircuitBreakerTask"]

# Message header counting the retries caused by open circuits (Celery's ``retries`` is not
# touched by them, so ``max_retries`` stays for the task's own failures).
CIRCUIT_RETRIES_HEADER = "resilience_circuit_retries"


class CircuitBreakerTask(Task):
    """Base class of tasks that call protected code: ``@shared_task(base=CircuitBreakerTask)``.

    A run that raises ``CircuitOpenError`` (or ``BulkheadFullError``) is published again with
    ``countdown`` = the error's ``retry_after`` (at least ``circuit_retry_min_countdown``, at
    most ``circuit_retry_max_countdown``) plus up to ``circuit_retry_jitter`` of it at random,
    so tasks that met the same open circuit do not all come back at the same instant. These
    retries keep ``request.retries`` as it was: they do not use up ``max_retries``. They are
    bounded by ``max_circuit_retries`` (None: no bound); past it the error is raised and the
    task fails as it would without this class. Run eagerly or called directly, the error is
    raised at once (an eager retry would run again immediately, hammering).
    """

    abstract = True  # Celery < 5.3 registers classes without it as tasks

    circuit_retry_min_countdown: float = 1.0
    circuit_retry_max_countdown: float = 3600.0
    circuit_retry_jitter: float = 0.1
    max_circuit_retries: int | None = 100

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except CircuitOpenError as exc:
            raise self.retry_when_closed(exc) from exc

    def circuit_countdown(self, exc: CircuitOpenError) -> float:
        """Seconds until the next attempt: ``retry_after``, bounded, plus jitter."""
        base = min(
            max(exc.retry_after, self.circuit_retry_min_countdown),
            self.circuit_retry_max_countdown,
        )
        return base + random.uniform(0.0, self.circuit_retry_jitter * base)  # noqa: S311

    def retry_when_closed(self, exc: CircuitOpenError) -> BaseException:
        """Publish the task again for after the circuit's wait; the exception to raise."""
        request = self.request
        if request.called_directly or request.is_eager:
            return exc
        headers = dict(request.headers or {})
        done = int(headers.get(CIRCUIT_RETRIES_HEADER) or 0)
        if self.max_circuit_retries is not None and done >= self.max_circuit_retries:
            return exc
        countdown = self.circuit_countdown(exc)
        headers[CIRCUIT_RETRIES_HEADER] = done + 1
        signature = self.signature_from_request(
            request, countdown=countdown, retries=request.retries, headers=headers
        )
        try:
            signature.apply_async()
        except Exception as publish_error:  # as Celery's own retry(): the broker refused it
            return Reject(publish_error, requeue=False)
        return Retry(exc=exc, when=countdown, sig=signature)
