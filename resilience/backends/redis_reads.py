"""The Redis backend's reads: snapshots of circuits, and their outboxes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resilience import engine
from resilience.backends.redis_client import ERRORS
from resilience.backends.redis_local import monotonic_ms
from resilience.engine import CLOSED, CircuitState, Policy, Ticket, Transition


class RedisReads:
    """``snapshot``, ``snapshot_many``, ``outbox`` and ``ack`` of ``RedisBackend``.

    Uses what the backend sets up: ``client``, ``clock``, ``_scripts``, ``_keys()``,
    ``_cluster``, ``_injected_clock``, ``_deferred``, ``_outboxed``, ``_outage``, ``_fail()``.
    """

    client: Any
    clock: Any
    _scripts: dict[str, Any]
    _cluster: bool
    _injected_clock: bool
    _deferred: Any
    _outboxed: Any
    _outage: Any
    _keys: Any
    _fail: Any

    def snapshot(self, name: str, policy: Policy) -> dict[str, Any]:
        return self.snapshot_many({name: policy})[name]

    def snapshot_many(self, policies: dict[str, Policy]) -> dict[str, dict[str, Any]]:
        if not policies:
            return {}
        names = list(policies)
        outages = self._outage.outages
        try:
            with self._deferred.held(names):
                if self._outage.outages != outages:
                    # The background send this read waited for (held) has just found Redis
                    # gone: one socket timeout per operation, not a second one for the read.
                    return self._outage.current_fallback().snapshot_many(policies)
                hashes, now = self._read(names)
                return {
                    name: self._snapshot_one(name, policies[name], fields, now)
                    for name, fields in zip(names, hashes, strict=True)
                }
        except ERRORS as exc:
            self._fail(exc)
            return self._outage.current_fallback().snapshot_many(policies)

    def _read(self, names: list[str]) -> tuple[list[dict[str, str]], int]:
        """The hashes of ``names`` and the time to judge them at, in one round trip."""
        keys = [self._keys(name)[0] for name in names]
        if self._cluster:  # keys of a page live in many slots: a pipeline, one per node
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return pipe.execute(), self.clock.now_ms()
        if len(keys) == 1:  # one circuit: HGETALL (and TIME) without a script around them
            if self._injected_clock:
                return [self.client.hgetall(keys[0])], self.clock.now_ms()
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            pipe.hgetall(keys[0])
            (seconds, micros), fields = pipe.execute()
            return [fields], seconds * 1000 + micros // 1000
        raw = self._scripts["snapshot_many"](keys=keys)
        server_now = int(raw[0]) * 1000 + int(raw[1]) // 1000
        now = self.clock.now_ms() if self._injected_clock else server_now
        return [_pairs(fields) for fields in raw[2:]], now

    def _snapshot_one(
        self, name: str, policy: Policy, fields: dict[str, str], now: int
    ) -> dict[str, Any]:
        state = CircuitState.from_fields(name, fields) if fields else CircuitState(name, epoch="")
        pending = self._deferred.peek(name) if self._deferred else None
        if pending is not None:  # this process's deferred successes, as if already sent
            ticket = Ticket(name, True, CLOSED, pending.generation, epoch=pending.epoch)
            local_now = None if self._injected_clock else monotonic_ms()
            for at, count in pending.pairs:
                when = at if local_now is None else now - (local_now - at)
                for _ in range(count):
                    engine.record(state, pending.policy, when, ticket, True, 0)
        return engine.snapshot(state, policy, now)

    def outbox(self, name: str, limit: int = 100) -> list[Transition]:
        if limit <= 0:
            return []
        items: list[Transition] = []
        try:
            for raw in self.client.lrange(self._keys(name)[1], 0, limit - 1):
                try:
                    items.append(self._outboxed.parse(raw))
                except (ValueError, TypeError):
                    continue  # not ours: skip rather than block the drain
        except ERRORS as exc:
            self._fail(exc)
        for fallback in self._outage.all_fallbacks():
            items.extend(fallback.outbox(name, limit - len(items)))
        return items[:limit]

    def ack(self, name: str, ids: list[str]) -> None:
        if not ids:
            return
        outbox = self._keys(name)[1]
        raws = self._outboxed.take(name, ids)
        try:
            if raws is None:  # not seen by this process: the script finds them by id
                self._scripts["ack"](keys=[outbox], args=list(ids))
            else:  # one LREM of each exact entry, in one round trip
                pipe = self.client.pipeline(transaction=False)
                for raw in raws:
                    pipe.lrem(outbox, 1, raw)
                pipe.execute()
        except ERRORS as exc:
            self._fail(exc)
        for fallback in self._outage.all_fallbacks():
            fallback.ack(name, ids)


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
