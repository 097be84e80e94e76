"""The Redis backend's reads: snapshots of circuits, and their outboxes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from resilience import engine
from resilience.backends.redis_client import ERRORS
from resilience.backends.redis_local import monotonic_ms
from resilience.engine import CLOSED, CircuitState, Policy, Ticket, Transition

# Circuits read by one script (or pipeline) at most: no script blocks Redis for longer than a
# page of keys takes (2 per circuit in snapshot_many, 1 in index_page).
PAGE = 100
# The index field saying the index is complete (circuit names are never empty); its value is
# when it was last rebuilt (seconds since the epoch).
INDEX_MARK = ""
# In Cluster the index is updated by the client after the script, so a process dying in between
# loses an entry: it is rebuilt from the circuits when older than this (seconds).
CLUSTER_INDEX_MAX_AGE = 300.0
# What a read returns: the hashes, the bulkhead slots (slot id, expiry) and the time to judge at.
_Read = tuple[list[dict[str, str]], list[list[tuple[str, float]]], int]


class RedisReads:
    """``snapshot``, ``snapshot_many``, ``outbox`` and ``ack`` of ``RedisBackend``.

    Uses what the backend sets up: ``client``, ``clock``, ``_scripts``, ``_keys()``,
    ``_cluster``, ``_injected_clock``, ``_deferred``, ``_returns``, ``_outboxed``,
    ``_outage``, ``_fail()``, ``prefix``, ``_index_key``.
    """

    prefix: str
    _index_key: str

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
        hashes = [_pairs(fields) for fields in raw[2 : 2 + count]]
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

    def not_closed(self) -> dict[str, str] | None:
        """The not-closed index: one ``HGETALL`` (its size is the number of circuits not
        closed). Rebuilt from the circuits, a page per script, when it is not complete (lost:
        evicted, deleted, or never built), and in Cluster when older than
        ``CLUSTER_INDEX_MAX_AGE``. During an outage, until its re-probe is due: what this
        process knows, without a round trip (so a render waits at most one socket timeout)."""
        if self._outage.fresh():
            return self._outage.current_fallback().not_closed()
        try:
            index = self.client.hgetall(self._index_key)
            mark = index.pop(INDEX_MARK, None)
            if mark is None or (
                self._cluster and time.time() - float(mark or 0) > CLUSTER_INDEX_MAX_AGE
            ):
                index = self._rebuild_index()
        except ERRORS as exc:
            self._fail(exc)
            return self._outage.current_fallback().not_closed()
        return index

    def _rebuild_index(self) -> dict[str, str]:
        """Walk every circuit's state hash (``SCAN``, a page at a time) into the index."""
        head, tail = len(f"{self.prefix}:v1:{{"), len("}:state")
        found: dict[str, str] = {}
        page: list[str] = []
        for key in self.client.scan_iter(match=f"{self.prefix}:v1:{{*}}:state", count=PAGE):
            page.append(key)
            if len(page) == PAGE:
                found.update(self._index_page(page, [k[head:-tail] for k in page]))
                page = []
        if page:
            found.update(self._index_page(page, [k[head:-tail] for k in page]))
        self.client.hset(self._index_key, INDEX_MARK, repr(time.time()))
        return found

    def _index_page(self, keys: list[str], names: list[str]) -> dict[str, str]:
        """Index a page of circuits by their stored state: one script (atomic with the
        transitions), or in Cluster one pipeline of reads and one of writes."""
        if not self._cluster:
            flat = self._scripts["index_page"](keys=[self._index_key, *keys], args=names)
            return _pairs(flat)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "state")
        states = dict(zip(names, pipe.execute(), strict=True))
        self._index_states(states)
        return {name: state for name, state in states.items() if state and state != CLOSED}

    def _index_transitions(self, name: str, transitions: Sequence[Transition]) -> None:
        """In Cluster: put the state a circuit's transitions left it in into the index."""
        if transitions:
            try:
                self._index_states({name: transitions[-1].to_state})
            except ERRORS as exc:  # the entry is repaired when the index is next rebuilt
                self._fail(exc)

    def _index_states(self, states: dict[str, str | None]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for name, state in states.items():
            if state and state != CLOSED:
                pipe.hset(self._index_key, name, state)
            else:
                pipe.hdel(self._index_key, name)
        pipe.execute()

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
