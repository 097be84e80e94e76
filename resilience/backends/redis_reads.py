"""The Redis backend's reads: snapshots of circuits, and their outboxes."""

from __future__ import annotations

from typing import Any

from resilience import engine
from resilience.backends.redis_client import ERRORS
from resilience.backends.redis_index import CLUSTER_INDEX_MAX_AGE, INDEX_MARK, PAGE, pairs
from resilience.backends.redis_local import monotonic_ms
from resilience.engine import CLOSED, CircuitState, Policy, Ticket, Transition

__all__ = ["CLUSTER_INDEX_MAX_AGE", "INDEX_MARK", "PAGE", "RedisReads"]

# What a read returns: the hashes, the bulkhead slots (slot id, expiry) and the time to judge at.
_Read = tuple[list[dict[str, str]], list[list[tuple[str, float]]], int]


class RedisReads:
    """``snapshot``, ``snapshot_many``, ``outbox`` and ``ack`` of ``RedisBackend``.

    Uses what the backend sets up: ``client``, ``clock``, ``_scripts``, ``_keys()``,
    ``_cluster``, ``_injected_clock``, ``_deferred``, ``_returns``, ``_outboxed``,
    ``_outage``, ``_fail()``.
    """

    client: Any
    clock: Any
    _scripts: dict[str, Any]
    _cluster: bool
    _injected_clock: bool
    _deferred: Any
    _returns: Any
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
        if self._outage.fresh():  # one socket timeout per re-probe interval, not per read
            self._outage.maybe_probe()
            return self._outage.current_fallback().snapshot_many(policies)
        outages = self._outage.outages
        try:
            with self._deferred.held(names), self._returns.sending:
                if self._outage.outages != outages:
                    # The background send this read waited for (held) has just found Redis
                    # gone: one socket timeout per operation, not a second one for the read.
                    return self._outage.current_fallback().snapshot_many(policies)
                result = {}
                for start in range(0, len(names), PAGE):  # no script reads more than a page
                    page = names[start : start + PAGE]
                    tracked = [policies[name].tracked for name in page]
                    hashes, slot_sets, now = self._read(page, tracked)
                    for name, fields, slots in zip(page, hashes, slot_sets, strict=True):
                        result[name] = self._snapshot_one(name, policies[name], fields, slots, now)
                return result
        except ERRORS as exc:
            self._fail(exc)
            return self._outage.current_fallback().snapshot_many(policies)

    def _read(self, names: list[str], tracked: list[bool]) -> _Read:
        """The hashes of ``names`` and the bulkhead slots of the ``tracked`` ones (the others
        read as none), and the time to judge them at, in one round trip."""
        keys = [self._keys(name)[0] for name in names]
        slot_keys = [self._keys(name)[2] for name in names]
        if self._cluster or len(keys) == 1:
            # Keys of a page live in many cluster slots: a pipeline, one per node. One
            # circuit: HGETALL and ZRANGE (and TIME) without a script around them.
            return self._read_pipelined(keys, slot_keys, tracked)
        return self._read_scripted(keys, slot_keys, tracked)

    def _read_pipelined(self, keys: list[str], slot_keys: list[str], tracked: list[bool]) -> _Read:
        pipe = self.client.pipeline(transaction=False)
        timed = not self._cluster and not self._injected_clock
        if timed:
            pipe.time()
        for key in keys:
            pipe.hgetall(key)
        for slot_key, wanted in zip(slot_keys, tracked, strict=True):
            if wanted:
                pipe.zrange(slot_key, 0, -1, withscores=True)
        replies = pipe.execute()
        now = self.clock.now_ms()
        if timed:
            seconds, micros = replies.pop(0)
            now = seconds * 1000 + micros // 1000
        read = iter(replies[len(keys) :])
        slot_sets = [next(read) if wanted else [] for wanted in tracked]
        return replies[: len(keys)], slot_sets, now

    def _read_scripted(self, keys: list[str], slot_keys: list[str], tracked: list[bool]) -> _Read:
        flags = ["1" if wanted else "0" for wanted in tracked]
        raw = self._scripts["snapshot_many"](keys=keys + slot_keys, args=flags)
        server_now = int(raw[0]) * 1000 + int(raw[1]) // 1000
        now = self.clock.now_ms() if self._injected_clock else server_now
        count = len(keys)
        hashes = [pairs(fields) for fields in raw[2 : 2 + count]]
        slot_sets = [
            [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
            for flat in raw[2 + count :]
        ]
        return hashes, slot_sets, now

    def _snapshot_one(
        self,
        name: str,
        policy: Policy,
        fields: dict[str, str],
        slots: list[tuple[str, float]],
        now: int,
    ) -> dict[str, Any]:
        state = CircuitState.from_fields(name, fields) if fields else CircuitState(name, epoch="")
        state.slots = {slot: int(expires) for slot, expires in slots}
        for slot in self._returns.peek(name):  # ended here, on their way back
            state.slots.pop(slot, None)
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
