"""What the requests adapter and the httpx transports share: naming, status rules, Retry-After."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any

from django.core.exceptions import ValidationError

from resilience.decorators import Breaker
from resilience.exceptions import CircuitOpenError
from resilience.policies import registry
from resilience.retry import TransientError
from resilience.validators import validate_circuit_name

DEFAULT_FAILURE_STATUSES = frozenset(range(500, 600))
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_AFTER_STATUSES = frozenset({429, 503})
TOO_MANY_REQUESTS = 429
MAX_RETRY_AFTER = 86_400.0  # a day: anything longer is a misconfigured server, not advice
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_MAX_HOSTS = 100  # per-host circuits one adapter or transport creates, at most
_UNSAFE = re.compile(r"[^a-z0-9._:\-]")
logger = logging.getLogger("resilience")


def host_circuit(scheme: str, host: str, port: int | None) -> str:
    """``http:<host>`` (lower-cased, ``:<port>`` only when not the scheme's default).

    Hosts are attacker-influenced in some apps (webhooks, user-supplied URLs): anything that
    is not a valid circuit name is replaced and a digest of the original keeps names distinct.
    """
    host = (host or "").strip("[]").rstrip(".").lower()
    label = host if port in (None, DEFAULT_PORTS.get(scheme.lower())) else f"{host}:{port}"
    safe = _UNSAFE.sub("-", label)
    name = f"http:{safe}"
    if safe != label or not safe or len(name) > 100:
        digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        name = f"http:{safe[:80]}-{digest}"
    validate_circuit_name(name)  # cannot fail by construction; guards future edits
    return name


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


class FailedResponse(TransientError):
    """A response whose status counts as a failure; it travels as an error through the breaker
    (and the retries) and is handed back to the caller as the response afterwards."""

    def __init__(self, response: Any, status: int, retry_after: float | None, retryable: bool):
        super().__init__(f"HTTP {status}", retry_after)
        self.response = response
        self.status = status
        self.transient = retryable


class RateLimited(FailedResponse):
    """429 (when not configured as a failure): retried when allowed, never counted."""


class RetryAfterHints:
    """The latest ``Retry-After`` each circuit's upstream asked for (this process, monotonic).

    A rejection of that circuit reports at least the remaining time in
    ``CircuitOpenError.retry_after``, so callers do not come back before the upstream said to.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def note(self, circuit: str, seconds: float | None) -> None:
        if seconds:
            with self._lock:
                self._until[circuit] = time.monotonic() + seconds

    def remaining(self, circuit: str) -> float:
        until = self._until.get(circuit)
        return max(0.0, until - time.monotonic()) if until is not None else 0.0

    def clear(self) -> None:
        with self._lock:
            self._until.clear()

    def apply(self, exc: CircuitOpenError) -> CircuitOpenError:
        remaining = self.remaining(exc.circuit)
        if remaining <= exc.retry_after:
            return exc
        return type(exc)(exc.circuit, remaining, exc.state)  # a BulkheadFullError stays one


hints = RetryAfterHints()


def bounded_timeout(timeout: Any, limit: float | None) -> Any:
    """``timeout`` (None = wait forever, seconds, or a tuple of them) capped at ``limit``."""
    if limit is None:
        return timeout
    if isinstance(timeout, tuple):
        return tuple(limit if part is None else min(part, limit) for part in timeout)
    return limit if timeout is None else min(timeout, limit)


class HTTPProtection:
    """Mixin for the adapter and transports: one breaker per circuit, statuses to outcomes.

    ``recorded`` (set by each subclass) lists the client library's errors that count as
    failures, besides failure statuses; other errors (bad URLs, client-side protocol misuse)
    are not the upstream's fault and are not counted. ``retry_methods`` are the methods retried
    per the policy's ``retry_attempts``; other requests (``POST`` by default) are never repeated.
    """

    recorded: tuple[type[BaseException], ...] = ()
    max_hosts = DEFAULT_MAX_HOSTS  # also for adapters unpickled from before the option

    def _setup_protection(
        self,
        circuit: str | None,
        failure_statuses: Iterable[int],
        retry_methods: Iterable[str],
        max_hosts: int,
    ) -> None:
        if circuit is not None:
            try:
                validate_circuit_name(circuit)
            except ValidationError as exc:
                raise ValueError(f"invalid circuit name {circuit!r}: {exc.messages[0]}") from None
        if isinstance(max_hosts, bool) or not isinstance(max_hosts, int) or max_hosts < 1:
            raise ValueError(f"max_hosts must be a whole number of at least 1, not {max_hosts!r}")
        self.circuit = circuit
        self.max_hosts = max_hosts
        self.failure_statuses = frozenset(int(status) for status in failure_statuses)
        self.retry_methods = frozenset(method.upper() for method in retry_methods)

    def _protected(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        # Created lazily (and not pickled with a requests adapter): name -> wrapped func.
        cache = self.__dict__.setdefault("_breakers", {})
        wrapped = cache.get(name)
        if wrapped is None:
            with self.__dict__.setdefault("_breakers_lock", threading.Lock()):
                wrapped = cache.get(name)  # another thread may have made it meanwhile
                if wrapped is None:
                    if self.circuit is None and len(cache) >= self.max_hosts:
                        return self._beyond_max_hosts(name, func)
                    breaker = Breaker(
                        name, ignore=(RateLimited,), record=(FailedResponse, *self.recorded)
                    )
                    wrapped = cache[name] = breaker(func)
        return wrapped

    def _beyond_max_hosts(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """A new host past ``max_hosts``: sent unprotected (no circuit, no policy row), so that
        URLs from outside (webhooks, user input) cannot fill the policy table; logged once."""
        if not self.__dict__.get("_warned_max_hosts"):
            self.__dict__["_warned_max_hosts"] = True
            logger.warning(
                "resilience: this client already has %d per-host circuits (max_hosts); "
                "requests to further hosts, such as %s, are sent without a circuit breaker",
                self.max_hosts,
                name,
            )
        return func

    def _call(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self._protected(name, func)(*args, **kwargs)
        except FailedResponse as exc:
            return exc.response
        except CircuitOpenError as exc:
            raise hints.apply(exc) from None

    async def _acall(
        self, name: str, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        try:
            return await self._protected(name, func)(*args, **kwargs)
        except FailedResponse as exc:
            return exc.response
        except CircuitOpenError as exc:
            raise hints.apply(exc) from None

    def _timeout_limit(self, name: str) -> float | None:
        """The circuit's ``call_timeout_ms`` in seconds (None: no limit), read at send time so
        that an admin edit applies to the next request; a host sent unprotected (past
        ``max_hosts``) has no circuit, hence no policy."""
        if name not in self.__dict__.get("_breakers", ()):
            return None
        limit_ms = registry.get(name).policy.call_timeout_ms
        return limit_ms / 1000 if limit_ms else None

    def _no_retry_unless_allowed(self, method: str, exc: BaseException) -> None:
        """Keep a connection error or timeout of e.g. a POST from being repeated by the retries."""
        if method.upper() not in self.retry_methods:
            exc.transient = False  # type: ignore[attr-defined]  # read by resilience.retry

    def _outcome_error(
        self, name: str, method: str, status: int, retry_after: str | None, response: Any
    ) -> FailedResponse | None:
        """The error to raise for a failure (or 429) response, or None for a good one."""
        if status in self.failure_statuses:
            error_class: type[FailedResponse] = FailedResponse
        elif status == TOO_MANY_REQUESTS:
            error_class = RateLimited
        else:
            return None
        hint = parse_retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
        if name in self.__dict__.get("_breakers", ()):  # not for hosts past max_hosts
            hints.note(name, hint)
        return error_class(response, status, hint, method.upper() in self.retry_methods)
