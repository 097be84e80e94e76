"""``CircuitBreakerTransport`` / ``AsyncCircuitBreakerTransport``: protected httpx transports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from resilience.contrib._http import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_MAX_HOSTS,
    IDEMPOTENT_METHODS,
    HTTPProtection,
    bounded_timeout,
    host_circuit,
)

TIMEOUT_KEYS = ("connect", "read", "write", "pool")

__all__ = ["AsyncCircuitBreakerTransport", "CircuitBreakerTransport"]


class _Protected(HTTPProtection):
    """Options shared by both transports (see ``CircuitBreakerTransport``)."""

    default_transport: Callable[[], Any]
    recorded = (
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
    )

    def __init__(
        self,
        circuit: str | None = None,
        transport: Any = None,
        *,
        failure_statuses: Iterable[int] = DEFAULT_FAILURE_STATUSES,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
        max_hosts: int = DEFAULT_MAX_HOSTS,
    ) -> None:
        self._setup_protection(circuit, failure_statuses, retry_methods, max_hosts)
        self.transport = transport if transport is not None else self.default_transport()

    def _bound_timeout(self, name: str, request: httpx.Request) -> None:
        """Cap the request's timeouts (httpx's per-request ``timeout`` extension) at the
        policy's ``call_timeout_ms``."""
        limit = self._timeout_limit(name)
        if limit is not None:
            given = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {
                key: bounded_timeout(given.get(key), limit) for key in TIMEOUT_KEYS
            }

    def circuit_name(self, url: httpx.URL) -> str:
        if self.circuit:
            return self.circuit
        return host_circuit(url.scheme, url.raw_host.decode("ascii", "replace"), url.port)


class CircuitBreakerTransport(_Protected, httpx.BaseTransport):
    """An httpx transport that sends through ``transport`` inside the breaker of ``circuit``.

    ``circuit=None`` gives every host its own circuit, ``http:<host>``; ``transport=None`` uses
    ``httpx.HTTPTransport()``. Network errors, timeouts and ``failure_statuses`` (default: 5xx)
    count as failures; the response is returned to the caller either way (a failure response
    is read first). Retries follow the circuit's policy, for ``retry_methods`` only::

        client = httpx.Client(transport=CircuitBreakerTransport("search"))
    """

    default_transport = httpx.HTTPTransport
    transport: httpx.BaseTransport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = self.circuit_name(request.url)
        return self._call(name, self._send_once, name, request)

    def _send_once(self, name: str, request: httpx.Request) -> httpx.Response:
        self._bound_timeout(name, request)
        with self._sending(request.method):
            response = self.transport.handle_request(request)
            failure = self._judge(name, request.method, response)
            if failure is not None:
                response.read()
        return self._settled(response, failure)

    def close(self) -> None:
        self.transport.close()


class AsyncCircuitBreakerTransport(_Protected, httpx.AsyncBaseTransport):
    """The ``httpx.AsyncClient`` twin of ``CircuitBreakerTransport``::

    client = httpx.AsyncClient(transport=AsyncCircuitBreakerTransport("search"))
    """

    default_transport = httpx.AsyncHTTPTransport
    transport: httpx.AsyncBaseTransport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = self.circuit_name(request.url)
        return await self._acall(name, self._send_once, name, request)

    async def _send_once(self, name: str, request: httpx.Request) -> httpx.Response:
        self._bound_timeout(name, request)
        with self._sending(request.method):
            response = await self.transport.handle_async_request(request)
            failure = self._judge(name, request.method, response)
            if failure is not None:
                await response.aread()
        return self._settled(response, failure)

    async def aclose(self) -> None:
        await self.transport.aclose()
