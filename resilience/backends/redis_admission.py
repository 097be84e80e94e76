"""The Redis backend's admission: ``acquire``, from the open cache, a plain read or a script."""

from __future__ import annotations

from typing import Any

from resilience.backends.base import OUTBOX_MAX
from resilience.backends.redis_client import ERRORS
from resilience.backends.redis_fallback import FallbackTicket
from resilience.engine import BULKHEAD_FULL, CLOSED, MONITOR, OPEN, Policy, Ticket, Transition
from resilience.engine_types import new_epoch

# Fraction of POLICY_REFRESH_SECONDS a remembered rejection answers for without Redis.
OPEN_CACHE_SHARE = 0.8
# What admits a call to a closed circuit, and whether its window holds failures.
_HEAD = ("state", "generation", "epoch", "win_failures")


class RedisAdmission:
    """``acquire`` of ``RedisBackend``: a remembered rejection (``OpenCache``), a plain
    ``HMGET`` for a circuit last seen closed, else the acquire script; during an outage, the
    ``ON_BACKEND_ERROR`` behaviour.

    Uses what the backend sets up: ``client``, ``clock``, ``_scripts``, ``_keys()``,
    ``_cluster``, ``_injected_clock``, ``_open_cache``, ``_returns``, ``_outboxed``,
    ``_outage``, ``_failure_free``, ``_fail()``, ``_local_now()``, ``_on_error()``,
    ``_refresh_seconds()``, ``_index_transitions()``, ``reprobe_interval``.
    """

    client: Any
    clock: Any
    reprobe_interval: float
    _scripts: dict[str, Any]
    _cluster: bool
    _injected_clock: bool
    _open_cache: Any
    _returns: Any
    _outboxed: Any
    _outage: Any
    _failure_free: dict[str, bool]
    _keys: Any
    _fail: Any
    _local_now: Any
    _on_error: Any
    _refresh_seconds: Any
    _index_transitions: Any

    def acquire(self, name: str, policy: Policy) -> Ticket:
        if self._outage.active:
            return self._degraded_acquire(name, policy)
        now = self._local_now()
        open_cache = self._open_cache
        if open_cache:
            cached = open_cache.get(name, policy, now)
            if cached is not None:
                return cached
        keys = self._keys(name)
        # A tracked call's fresh slot id rides with the slots of this process's ended calls.
        returns = self._returns.take(name) if policy.tracked else []
        try:
            if name not in open_cache and not policy.tracked:
                closed = self._admit_closed(name, keys[0])
                if closed is not None:
                    return closed
            args = self._acquire_args(name, policy, now, returns)
            raw = self._scripts["acquire"](keys=keys, args=args)
            transitions = tuple(self._outboxed.parse(t) for t in raw[9:])
        except ERRORS as exc:
            if returns:
                self._returns.restore({name: returns})  # to go once Redis is back
            self._fail(exc)
            return self._degraded_acquire(name, policy)
        if transitions and self._cluster:
            self._index_transitions(name, transitions)
        return self._script_ticket(name, policy, now, raw[:9], transitions)

    def _admit_closed(self, name: str, state_key: str) -> Ticket | None:
        """Last seen closed (or never seen): a plain HMGET admits without a script. None:
        anything else (no epoch yet, not closed) is for the script to decide."""
        state, generation, epoch, failures = self.client.hmget(state_key, _HEAD)
        if epoch and (state is None or state == CLOSED):
            self._failure_free[name] = failures is None or failures == "0"
            return Ticket(name, True, CLOSED, int(generation or 0), epoch=epoch)
        return None

    def _acquire_args(self, name: str, policy: Policy, now: int, returns: list[str]) -> list[Any]:
        args = [
            now if self._injected_clock else "",
            name,
            new_epoch(),
            OUTBOX_MAX,
            policy.half_open_max_calls,
            policy.permit_ttl_ms,
        ]
        if policy.tracked:
            args += [
                policy.max_concurrent_calls,
                policy.slot_lease_ms,
                policy.deadline_ms,
                new_epoch(),
                1 if policy.mode == MONITOR else 0,
                *returns,
            ]
        return args

    def _script_ticket(
        self,
        name: str,
        policy: Policy,
        now: int,
        head: list[Any],
        transitions: tuple[Transition, ...],
    ) -> Ticket:
        """The ticket the acquire script's answer (``head``: its first 9 fields) stands for."""
        admitted, state, generation, permit, retry_after_ms, epoch, slot, over, clean = head
        if admitted:
            self._open_cache.discard(name)  # what this process knew is out of date
            if state == CLOSED and slot:
                # What _admit_closed tells an untracked call (a tracked one never reads it).
                self._failure_free[name] = bool(clean)
            if state == CLOSED and not slot:
                return Ticket(name, True, CLOSED, generation, epoch=epoch)
            return Ticket(
                name,
                True,
                state,
                generation,
                permit or None,
                0,
                False,
                transitions,
                epoch,
                slot or None,
                bool(over),
            )
        if state == BULKHEAD_FULL:  # not remembered: a slot may come back any moment
            return Ticket(name, False, state, generation, None, retry_after_ms, epoch=epoch)
        monitor = policy.mode == MONITOR
        ticket = Ticket(
            name, monitor, state, generation, None, retry_after_ms, monitor, transitions, epoch
        )
        self._remember(name, policy, ticket, now)
        return ticket

    def _remember(self, name: str, policy: Policy, rejection: Ticket, now: int) -> None:
        # Re-ask Redis a little before POLICY_REFRESH_SECONDS is up, so that a reset made in
        # another process is in force here within that bound, not just after it.
        horizon_ms = int(self._refresh_seconds() * 1000 * OPEN_CACHE_SHARE)
        self._open_cache.put(name, policy, rejection, now, horizon_ms)

    def _degraded_acquire(self, name: str, policy: Policy) -> Ticket:
        self._outage.maybe_probe()
        mode = self._on_error()
        if mode == "allow":
            return FallbackTicket(name, True, CLOSED, 0)
        if mode == "deny":
            monitor = policy.mode == MONITOR
            retry_ms = int(self.reprobe_interval * 1000)
            return FallbackTicket(name, monitor, OPEN, 0, None, retry_ms, monitor)
        fallback = self._outage.current_fallback()
        return FallbackTicket.wrap(fallback.acquire(name, policy), fallback)
