"""Circuit state in Redis, shared by every process and host: one Lua script per operation."""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from resilience.backends import redis_options
from resilience.backends.base import OUTBOX_MAX, Backend
from resilience.backends.memory import MemoryBackend
from resilience.backends.redis_admission import OPEN_CACHE_SHARE, RedisAdmission
from resilience.backends.redis_client import (
    ERRORS,
    connect,
    drop_idle_connections,
    script_source,
)
from resilience.backends.redis_fallback import (
    ON_ERROR_CHOICES,
    FallbackTicket,
    Outage,
)
from resilience.backends.redis_history import RedisHistory
from resilience.backends.redis_index import RedisIndex
from resilience.backends.redis_local import (
    Deferred,
    OpenCache,
    Outboxed,
    Pending,
    SlotReturns,
    monotonic_ms,
    policy_args,
)
from resilience.backends.redis_reads import RedisReads
from resilience.backends.redis_slots import RedisSlots
from resilience.backends.redis_sweep import RedisSweep
from resilience.conf import settings
from resilience.engine import CLOSED, OPEN, Policy, Ticket, Transition
from resilience.engine_types import new_epoch
from resilience.rules import Problem

__all__ = ["OPEN_CACHE_SHARE", "RedisBackend", "script_source"]

logger = logging.getLogger("resilience")

SCRIPTS = (
    "acquire",
    "record",
    "release",
    "renew",
    "reset",
    "snapshot_many",
    "ack",
    "index_page",
    "advance",
    "retire",
    "history",
)
NEVER = "-1"  # a ticket generation no circuit has: record.lua then only applies deferred successes


def _setting(name: str, default: Any) -> Any:
    """A ``RESILIENCE`` setting read now (lazily), or ``default`` outside a Django project."""
    try:
        return settings.get(name)
    except ImproperlyConfigured:
        return default


def _flush_at_exit(ref: weakref.ref[RedisBackend]) -> None:
    backend = ref()
    if backend is not None and not backend._outage.active:
        try:
            backend.flush()
        except Exception:  # noqa: S110 - the interpreter is going away: never fail its exit
            pass


class RedisBackend(
    RedisAdmission, RedisSlots, RedisSweep, RedisReads, RedisIndex, RedisHistory, Backend
):
    """Shared circuit state in Redis, updated atomically by Lua scripts.

    Options (``RESILIENCE["OPTIONS"]``): ``url`` (``redis://``, ``rediss://``, user and
    password in the URL for ACLs), ``prefix``, ``socket_timeout`` (seconds; also the connect
    timeout unless ``socket_connect_timeout`` is given), ``reprobe_interval`` (seconds between
    re-probes while Redis is unusable), ``log_interval`` (minimum seconds between two logged
    backend errors), ``sentinels`` + ``service_name`` (+ ``sentinel_kwargs``) for Sentinel,
    ``cluster=True`` for Redis Cluster, ``defer_successes`` (see docs/redis.md); any other
    option is passed to redis-py (``ssl_ca_certs``, ``max_connections``, ...).

    No Redis error ever reaches the caller: the first failing call waits at most one
    ``socket_timeout``, then ``RESILIENCE["ON_BACKEND_ERROR"]`` applies without touching Redis
    until a background ``PING`` succeeds.
    """

    def __init__(
        self,
        clock: Any = None,
        url: str | None = None,
        prefix: str = "resilience",
        socket_timeout: float = 0.05,
        *,
        socket_connect_timeout: float | None = None,
        reprobe_interval: float = 5.0,
        log_interval: float = 60.0,
        sentinels: Iterable[Any] | None = None,
        service_name: str | None = None,
        sentinel_kwargs: dict[str, Any] | None = None,
        cluster: bool = False,
        defer_successes: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(clock, **options)
        self._injected_clock = clock is not None
        redis_options.validate(
            {
                "url": url,
                "prefix": prefix,
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_connect_timeout,
                "reprobe_interval": reprobe_interval,
                "log_interval": log_interval,
                "sentinels": sentinels,
                "service_name": service_name,
                "sentinel_kwargs": sentinel_kwargs,
                "cluster": cluster,
                "defer_successes": defer_successes,
            }
        )
        url = url or "redis://127.0.0.1:6379/0"
        self.prefix = prefix
        self.socket_timeout = float(socket_timeout)
        self.reprobe_interval = float(reprobe_interval)
        self._cluster = bool(cluster)
        self._defer = bool(defer_successes)
        self.client, self.where, secrets = connect(
            url,
            self.socket_timeout,
            float(socket_connect_timeout or socket_timeout),
            sentinels=sentinels,
            service_name=service_name,
            sentinel_kwargs=sentinel_kwargs,
            cluster=self._cluster,
            options=options,
        )
        self._scripts = {name: self.client.register_script(script_source(name)) for name in SCRIPTS}
        self._keys_cache: dict[str, tuple[str, ...]] = {}
        # The not-closed index (see RedisIndex.not_closed); in Cluster it is in another hash
        # slot than any circuit, so the scripts do not get it (the client updates it).
        self._index_key = f"{prefix}:v1:not-closed"
        self._index_keys = () if self._cluster else (self._index_key,)
        # Per circuit: whether its window held no failure at this process's last closed admit.
        self._failure_free: dict[str, bool] = {}
        self._outboxed = Outboxed(OUTBOX_MAX)
        self._open_cache = OpenCache()
        self._deferred = Deferred(self._flush_pending, self._refresh_seconds)
        self._returns = SlotReturns(self._send_returns)
        # A process that exits normally gives its slots back and sends its deferred successes
        # (a killed one cannot: its slots lapse with their lease).
        atexit.register(_flush_at_exit, weakref.ref(self))
        self._outage = Outage(
            ping=self.client.ping,
            make_fallback=self._new_fallback,
            interval=self.reprobe_interval,
            log_interval=float(log_interval),
            where=self.where,
            secrets=secrets,
        )

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[Problem]:
        return super().check_options(options) + redis_options.problems(options)

    def _keys(self, name: str) -> tuple[str, ...]:
        """The circuit's state hash, outbox list and bulkhead slots sorted set, and the
        not-closed index (but in Cluster), which the scripts that make transitions update."""
        keys = self._keys_cache.get(name)
        if keys is None:
            # The braces are a Cluster hash tag: all keys of a circuit live in one slot.
            base = f"{self.prefix}:v1:{{{name}}}"
            keys = (base + ":state", base + ":outbox", base + ":slots", *self._index_keys)
            if len(self._keys_cache) < 10_000:
                self._keys_cache[name] = keys
        return keys

    def _now_arg(self) -> int | str:
        return self.clock.now_ms() if self._injected_clock else ""

    def _local_now(self) -> int:
        return self.clock.now_ms() if self._injected_clock else monotonic_ms()

    def _pending_args(self, pending: Pending | None) -> list[Any]:
        if pending is None:
            return []
        return pending.args(None if self._injected_clock else monotonic_ms())

    @staticmethod
    def _refresh_seconds() -> float:
        return float(_setting("POLICY_REFRESH_SECONDS", 1.0))

    def _fail(self, exc: BaseException) -> None:
        """Enter (or stay in) degraded mode after a failed Redis call."""
        self._outage.trip(exc)
        drop_idle_connections(self.client, self._cluster)

    def _new_fallback(self) -> MemoryBackend:
        """The local state for an outage: circuits this process last saw open start open."""
        fallback = MemoryBackend(clock=self.clock)
        local_now, fallback_now = self._local_now(), self.clock.now_ms()
        for name, until in self._open_cache.known_open(local_now):
            fallback.assume_open(name, fallback_now + until - local_now)
        return fallback

    def _on_error(self) -> str:
        mode = _setting("ON_BACKEND_ERROR", "local")
        return mode if mode in ON_ERROR_CHOICES else "local"

    # --- the call path --------------------------------------------------------------------------

    def record(
        self, ticket: Ticket, policy: Policy, success: bool, duration_ms: int
    ) -> list[Transition]:
        if isinstance(ticket, FallbackTicket):
            # Recorded where it was issued, even if Redis is back by now; "allow"/"deny": never.
            origin = ticket.origin
            return origin.record(ticket, policy, success, duration_ms) if origin else []
        if not ticket.admitted or (ticket.permit is None and ticket.state != CLOSED):
            return []  # rejected or monitor-rejected: the engine ignores these without a change
        name = ticket.circuit
        failed = not success or 0 < policy.deadline_ms < duration_ms
        if ticket.state == CLOSED:
            if not failed and self._defer_success(ticket, policy):
                return []
        else:
            self._open_cache.discard(name)  # a trial's outcome closes or re-opens
        if failed:
            # The window now holds a failure: no success is deferred under a rate rule until an
            # admit reads it again (set again once stored, for an admit that read it meanwhile).
            self._failure_free[name] = False
        if self._outage.active:
            self._outage.maybe_probe()
            return []  # a Redis ticket's outcome cannot be stored anywhere meaningful
        return self._store_outcome(ticket, policy, failed)

    def _defer_success(self, ticket: Ticket, policy: Policy) -> bool:
        """Whether the success of closed-circuit ``ticket`` was deferred (see docs/redis.md).

        Under a failure-rate rule only while the window held no failure when this process last
        looked (so that, in this process's own sequence, it cannot trip), and sent by the
        background thread at once; the script still judges the rule as it lands, for failures
        other processes made meanwhile (it may trip there: _flush_pending hands that on).
        """
        rated = policy.failure_rate_threshold > 0
        return bool(
            self._defer
            and (not rated or self._failure_free.get(ticket.circuit, False))
            and not self._outage.active
            and self._deferred.add(ticket, policy, self._local_now(), urgent=rated)
        )

    def _store_outcome(self, ticket: Ticket, policy: Policy, failed: bool) -> list[Transition]:
        """Run the record script for ``ticket`` (with this circuit's deferred successes)."""
        name = ticket.circuit
        pending = self._deferred.take(name) if self._deferred else None
        args = [
            self._now_arg(),
            name,
            new_epoch(),
            OUTBOX_MAX,
            ticket.epoch,
            ticket.generation,
            ticket.permit or "",
            1 if failed else 0,
            *policy_args(policy),
            *self._pending_args(pending),
        ]
        try:
            raw = self._scripts["record"](keys=self._keys(name), args=args)
            transitions = [self._outboxed.parse(t) for t in raw]
        except ERRORS as exc:
            self._fail(exc)
            return []
        finally:
            if failed:
                self._failure_free[name] = False
        self._opened_here(name, policy, transitions)
        return transitions

    def _opened_here(self, name: str, policy: Policy, transitions: list[Transition]) -> None:
        """This process opened it: its next calls are rejected without asking Redis, as after
        a rejected acquire. (In Cluster, the index of circuits not closed is updated too.)"""
        if transitions and self._cluster:
            self._index_transitions(name, transitions)
        for opened in transitions:
            if opened.to_state == OPEN:
                epoch = opened.id.rpartition(":")[0]
                wait_ms = opened.retry_after_ms
                rejection = Ticket(name, False, OPEN, opened.generation, None, wait_ms, epoch=epoch)
                self._remember(name, policy, rejection, self._local_now())

    def _flush_pending(self, name: str, pending: Pending) -> None:
        """Send deferred successes on their own (background thread, ``close()``)."""
        if self._outage.active:
            return
        args = [self._now_arg(), name, new_epoch(), OUTBOX_MAX, "", NEVER, "", 0]
        args += policy_args(pending.policy) + self._pending_args(pending)
        try:
            raw = self._scripts["record"](keys=self._keys(name), args=args)
        except ERRORS as exc:
            self._fail(exc)
            return
        if not raw:
            return
        # A success under a rate rule tripped it (see apply_successes). The transition is in
        # the outbox already: should handing it on fail, the sweeper stores it; the thread
        # that sends the queues must not die of it.
        try:
            transitions = [self._outboxed.parse(t) for t in raw]
            self._opened_here(name, pending.policy, transitions)
            self.on_background_transitions(name, transitions)
        except Exception:
            logger.exception("resilience: a transition of circuit %s was not handed on", name)

    def release(self, ticket: Ticket, policy: Policy) -> None:
        if isinstance(ticket, FallbackTicket):
            if ticket.origin is not None:
                ticket.origin.release(ticket, policy)
            return
        if ticket.permit is None:
            return
        self._open_cache.discard(ticket.circuit)
        if self._outage.active:
            self._outage.maybe_probe()
            return
        state_key = self._keys(ticket.circuit)[0]
        try:
            args = [ticket.epoch, ticket.generation, ticket.permit]
            self._scripts["release"](keys=[state_key], args=args)
        except ERRORS as exc:
            self._fail(exc)

    # --- operator side: always tries Redis, falls back on error ---------------------------------

    def reset(self, name: str, policy: Policy) -> list[Transition]:
        self._open_cache.discard(name)
        pending = self._deferred.take(name) if self._deferred else None
        fallback = self._outage.fallback
        args = [self._now_arg(), name, new_epoch(), OUTBOX_MAX, *self._pending_args(pending)]
        try:
            raw = self._scripts["reset"](keys=self._keys(name), args=args)
            transitions = [self._outboxed.parse(t) for t in raw]
        except ERRORS as exc:
            self._fail(exc)
            return self._outage.current_fallback().reset(name, policy)
        if self._cluster:
            self._index_transitions(name, transitions)
        if fallback is not None:  # keep this process's outage state in line, silently
            local = fallback.reset(name, policy)
            fallback.ack(name, [t.id for t in local])
        return transitions

    def health(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "location": self.where,
            "on_backend_error": self._on_error(),
            "deferred_successes": len(self._deferred),
            "slots_to_return": len(self._returns),
            **self._outage.describe(),
        }

    def probe(self) -> bool:
        """Re-probe Redis now (tests, operators); True if it answered and degraded mode ended."""
        return self._outage.probe() if self._outage.active else True

    def flush(self) -> None:
        """Send deferred successes, waiting slot give-backs and the history's counts now."""
        super().flush()
        self._deferred.flush_all()
        waiting = self._returns.drain()
        if waiting:
            self._send_returns(waiting)

    def close(self) -> None:
        super().close()
        self._deferred.close()
        waiting = self._returns.close()
        try:
            if not self._outage.active:
                self._deferred.flush_all()
                if waiting:
                    self._send_returns(waiting)
        finally:
            try:
                self.client.close()
            except Exception:  # noqa: S110 - closing a broken connection must not raise
                pass
