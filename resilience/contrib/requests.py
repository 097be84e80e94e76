"""``CircuitBreakerAdapter``: mount it on a ``requests.Session`` to protect every request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ContentDecodingError, RetryError
from urllib3.util import Timeout, parse_url

from resilience.contrib._http import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_MAX_HOSTS,
    IDEMPOTENT_METHODS,
    HTTPProtection,
    bounded_timeout,
    host_circuit,
)

__all__ = ["CircuitBreakerAdapter"]


def _bounded(timeout: Any, limit: float | None) -> Any:
    """``bounded_timeout``, also for the ``urllib3.Timeout`` that requests accepts too (its
    connect and read parts capped at ``limit``; a total, if any, is kept: it only shortens)."""
    if limit is None or not isinstance(timeout, Timeout):
        return bounded_timeout(timeout, limit)
    parts = (timeout.connect_timeout, timeout._read)  # read_timeout needs a started clock
    connect, read = (part if isinstance(part, int | float) else None for part in parts)
    total = timeout.total if isinstance(timeout.total, int | float) else None
    return Timeout(
        connect=bounded_timeout(connect, limit), read=bounded_timeout(read, limit), total=total
    )


class CircuitBreakerAdapter(HTTPProtection, HTTPAdapter):
    """An ``HTTPAdapter`` whose requests go through the breaker of ``circuit``.

    ``circuit=None`` gives every host its own circuit, ``http:<host>``. Connection errors,
    timeouts, broken bodies and ``failure_statuses`` (default: 5xx) count as failures; the
    response is returned to the caller either way. The body is read inside the breaker unless
    ``stream=True``, so a hanging body counts too. Retries follow the circuit's policy, for
    ``retry_methods`` only; ``adapter_kwargs`` go to ``HTTPAdapter`` (pool sizes, ...)::

        session = requests.Session()
        session.mount("https://api.example.com/", CircuitBreakerAdapter("payments-api"))
    """

    __attrs__ = [
        *HTTPAdapter.__attrs__,
        "circuit",
        "failure_statuses",
        "retry_methods",
        "max_hosts",
    ]
    recorded = (
        requests.ConnectionError,  # includes connect timeouts, SSL and proxy errors
        requests.Timeout,
        RetryError,
        ChunkedEncodingError,
        ContentDecodingError,
    )

    def __init__(
        self,
        circuit: str | None = None,
        *,
        failure_statuses: Iterable[int] = DEFAULT_FAILURE_STATUSES,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        **adapter_kwargs: Any,
    ) -> None:
        self._setup_protection(circuit, failure_statuses, retry_methods, max_hosts)
        super().__init__(**adapter_kwargs)

    @staticmethod
    def circuit_for(url: str) -> str:
        parsed = parse_url(url)
        return host_circuit(parsed.scheme or "http", parsed.host or "", parsed.port)

    # Narrower than HTTPAdapter.send on purpose: requests' Session passes the options as keywords,
    # and they are forwarded unchanged.
    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        name = self.circuit or self.circuit_for(request.url or "")
        return self._call(name, self._send_once, name, request, **kwargs)

    def _send_once(
        self, name: str, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        method = request.method or "GET"
        # The smaller of the caller's timeout and the policy's call_timeout_ms (requests waits
        # forever without one). Both bound each connect and each read, not the whole body: the
        # watchdog judges a call still running at the deadline (see docs/hangs.md).
        kwargs["timeout"] = _bounded(kwargs.get("timeout"), self._timeout_limit(name))
        with self._sending(method):
            response = super().send(request, **kwargs)
            failure = self._judge(name, method, response)
            if failure is not None or not kwargs.get("stream"):
                response.content  # noqa: B018 - read here so a hanging body counts as a failure
        return self._settled(response, failure)
