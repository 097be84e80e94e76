"""What the requests adapter and the httpx transports share: naming, status rules, Retry-After."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

from django.core.exceptions import ValidationError

from resilience.backends import get_backend
from resilience.conf import settings as conf
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
DEFAULT_MAX_HOSTS = 100  # per-host circuits in the process, at most (see Circuits)
RETIRE_EVERY_MS = 60_000  # idle per-host circuits are looked for at most this often
_UNSAFE_IN_NAME = re.compile(r"[^a-z0-9._\-]")  # besides the ":<port>" host_circuit adds
_UNSAFE_IN_ADDRESS = re.compile(r"[^a-z0-9._:\-]")
# Every form of an IPv4 address that inet_aton (and so the resolver) accepts: 1 to 4 parts,
# each decimal, octal (leading 0) or hexadecimal (0x).
_IPV4_FORM = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")
logger = logging.getLogger("resilience")


def host_circuit(scheme: str, host: str, port: int | None) -> str:
    """``http:<host>``, with ``:<port>`` only when it is not the scheme's default.

    One name per address the client would connect to: case and the trailing dots of a name are
    dropped; an IPv4 address in any form the resolver accepts (``127.1``, ``2130706433``,
    ``0x7f.0.0.1``, octal parts: it reads them as ``inet_aton`` does) is written dotted-decimal;
    an IPv6 address compressed (``::1``), or dotted-decimal when it is IPv4-mapped, with its
    port after a ``.`` (``::1.8000``: a ``:`` would be ambiguous). Only what reaches the same
    address is merged: a host the resolver would not read as an address (``127.0.0.1.``,
    ``1.2.3.4.5``, ``%31%32%37.0.0.1``) keeps a name of its own, so that its failures cannot
    count against the address's circuit.

    Hosts are attacker-influenced in some apps (webhooks, user-supplied URLs): anything that
    is not a valid circuit name is replaced and a digest of the original keeps names distinct
    (a ``:`` too, except in an IPv6 address, so that ``<host>:<port>`` stays unambiguous).
    """
    canonical, ipv6 = _canonical_host(host or "")
    label = canonical
    if port is not None and port != DEFAULT_PORTS.get(scheme.lower()):
        label = f"{canonical}{'.' if ipv6 else ':'}{port}"
    safe_host = (_UNSAFE_IN_ADDRESS if ipv6 else _UNSAFE_IN_NAME).sub("-", canonical)
    safe = safe_host + label[len(canonical) :]
    name = f"http:{safe}"
    if safe_host != canonical or not safe or len(name) > 100:
        digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        name = f"http:{safe[:80]}-{digest}"
    validate_circuit_name(name)  # cannot fail by construction; guards future edits
    return name


def _canonical_host(host: str) -> tuple[str, bool]:
    """The host's one spelling (see ``host_circuit``), and whether it is an IPv6 address."""
    host = host.lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            address = ipaddress.IPv6Address(bare)
        except ValueError:
            return bare, False  # not an address: its ":" is replaced like any odd character
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped), False
        return address.compressed, True
    if _IPV4_FORM.fullmatch(host):  # inet_aton alone is lax about trailing text
        try:
            return socket.inet_ntoa(socket.inet_aton(host)), False
        except OSError:  # out of range ("256.0.0.1"), too many parts: not an address
            return host, False
    name = host.rstrip(".")
    if _IPV4_FORM.fullmatch(name):  # "127.0.0.1.": the resolver fails on it; keep it apart
        return host, False
    return name, False


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


def _run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


async def _arun(func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    return await func(*args, **kwargs)


class Circuits:
    """The breakers of every adapter and transport in this process, one per circuit and kind.

    Shared, so that per-host circuits (``circuit=None``) are counted per process, not per
    adapter: code that builds a session or client per request would otherwise give every host
    it is handed a circuit, a policy row and metrics series. A new host gets a circuit only
    while the process has fewer per-host circuits than the asking adapter's ``max_hosts``;
    past that its requests are sent unprotected (logged once per process). A per-host circuit
    unused for ``IDLE_CIRCUIT_SECONDS`` is retired (``_retire_idle``: in the backend, then
    here), which frees its place; looked for only when a new circuit is made, so the call
    path pays nothing.

    A breaker wraps ``_run`` / ``_arun``, which call the adapter's send function given to them,
    so one breaker serves every adapter of its kind (``record`` differs between the requests
    and httpx integrations).
    """

    def __init__(self) -> None:
        self._wrapped: dict[tuple[str, tuple[type[BaseException], ...], bool], Any] = {}
        self._names: set[str] = set()
        self._hosts: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False
        self._next_sweep = 0  # backend clock ms: when to look for idle per-host circuits

    def get(
        self,
        name: str,
        record: tuple[type[BaseException], ...],
        asynchronous: bool,
        max_hosts: int | None,
    ) -> Callable[..., Any] | None:
        """``wrapped(func, *args, **kwargs)`` runs ``func`` in the breaker of ``name``; None for a
        new host past ``max_hosts`` (None for ``max_hosts``: a named circuit, never capped)."""
        key = (name, record, asynchronous)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            with self._lock:
                wrapped = self._wrapped.get(key)  # another thread may have made it meanwhile
                if wrapped is None:
                    if max_hosts is not None and name not in self._hosts:
                        self._retire_idle()
                        if len(self._hosts) >= max_hosts:
                            self._beyond(name, max_hosts)
                            return None
                        self._hosts.add(name)
                    breaker = Breaker(name, ignore=(RateLimited,), record=record)
                    breaker.cancels_coroutines = False  # the request timeout does it
                    wrapped = self._wrapped[key] = breaker(_arun if asynchronous else _run)
                    self._names.add(name)
        return wrapped

    def _retire_idle(self) -> None:
        """Forget the per-host circuits idle for ``IDLE_CIRCUIT_SECONDS`` (``Backend.retire``:
        closed, nothing in flight, no outcome recorded for that long, in every process that
        shares the backend), here too; at most once per ``RETIRE_EVERY_MS`` (caller holds the
        lock). Never raises: a failure only keeps them."""
        idle_seconds = conf.IDLE_CIRCUIT_SECONDS
        if not self._hosts or not idle_seconds:
            return
        try:
            backend = get_backend()
            now = backend.clock.now_ms()
            if now < self._next_sweep:
                return
            self._next_sweep = now + min(RETIRE_EVERY_MS, int(idle_seconds * 100))
            retired = set(backend.retire(sorted(self._hosts), int(idle_seconds * 1000)))
        except Exception as exc:
            logger.warning(
                "resilience: could not retire idle HTTP circuits: %s", type(exc).__name__
            )
            return
        if retired:
            self._hosts -= retired
            self._names -= retired
            self._wrapped = {k: v for k, v in self._wrapped.items() if k[0] not in retired}
            logger.info("resilience: retired %d idle per-host HTTP circuit(s)", len(retired))

    def protects(self, name: str) -> bool:
        return name in self._names

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(self._hosts)

    def _beyond(self, name: str, max_hosts: int) -> None:
        """A new host past ``max_hosts`` is sent unprotected (no circuit, no policy row, no
        metrics), so that URLs from outside (webhooks, user input) cannot fill the policy table
        or the process's memory; logged once per process (the caller holds the lock)."""
        if not self._warned:
            self._warned = True
            logger.warning(
                "resilience: this process already has %d per-host HTTP circuits (max_hosts); "
                "requests to further hosts, such as %s, are sent without a circuit breaker",
                max_hosts,
                name,
            )

    def clear(self) -> None:
        """Forget every breaker and host (tests)."""
        with self._lock:
            self._wrapped.clear()
            self._names.clear()
            self._hosts.clear()
            self._warned = False
            self._next_sweep = 0


circuits = Circuits()


class HTTPProtection:
    """Mixin for the adapter and transports: breakers per circuit, statuses to outcomes.

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

    def _protected(self, name: str, asynchronous: bool) -> Callable[..., Any] | None:
        """The process's breaker for ``name`` (see ``Circuits``); None: send unprotected."""
        return circuits.get(
            name,
            (FailedResponse, *self.recorded),
            asynchronous,
            None if self.circuit is not None else self.max_hosts,
        )

    def _call(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        protected = self._protected(name, False)
        try:
            if protected is None:
                return func(*args, **kwargs)
            return protected(func, *args, **kwargs)
        except FailedResponse as exc:
            return exc.response
        except CircuitOpenError as exc:
            raise hints.apply(exc) from None

    async def _acall(
        self, name: str, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        protected = self._protected(name, True)
        try:
            if protected is None:
                return await func(*args, **kwargs)
            return await protected(func, *args, **kwargs)
        except FailedResponse as exc:
            return exc.response
        except CircuitOpenError as exc:
            raise hints.apply(exc) from None

    def _timeout_limit(self, name: str) -> float | None:
        """The circuit's ``call_timeout_ms`` in seconds (None: no limit), read at send time so
        that an admin edit applies to the next request; a host sent unprotected (past
        ``max_hosts``) has no circuit, hence no policy."""
        if not circuits.protects(name):
            return None
        limit_ms = registry.get(name).policy.call_timeout_ms
        return limit_ms / 1000 if limit_ms else None

    def _no_retry_unless_allowed(self, method: str, exc: BaseException) -> None:
        """Keep a connection error or timeout of e.g. a POST from being repeated by the retries."""
        if method.upper() not in self.retry_methods:
            exc.transient = False  # type: ignore[attr-defined]  # read by resilience.retry

    # One send, the same in the adapter and both transports (only the awaited calls differ):
    #
    #     with self._sending(method):
    #         response = <send>
    #         failure = self._judge(name, method, response)
    #         if failure is not None:
    #             <read the body>  # a hanging failure body counts with the failure
    #     return self._settled(response, failure)

    @contextmanager
    def _sending(self, method: str) -> Iterator[None]:
        """Around a send: a ``recorded`` error (a failure) is not retried unless ``method``
        may be."""
        try:
            yield
        except self.recorded as exc:
            self._no_retry_unless_allowed(method, exc)
            raise

    def _judge(self, name: str, method: str, response: Any) -> FailedResponse | None:
        """The failure that ``response`` (requests' or httpx's) stands for; None: a success."""
        retry_after = response.headers.get("Retry-After")
        return self._outcome_error(name, method, response.status_code, retry_after, response)

    @staticmethod
    def _settled(response: Any, failure: FailedResponse | None) -> Any:
        """The response of a good send; a failure is raised for the breaker to count (``_call``
        hands its response back to the caller)."""
        if failure is not None:
            raise failure
        return response

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
        if circuits.protects(name):  # not for hosts past max_hosts
            hints.note(name, hint)
        return error_class(response, status, hint, method.upper() in self.retry_methods)
