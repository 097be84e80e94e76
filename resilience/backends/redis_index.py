"""The Redis backend's index of the circuits that are not closed (what the admin lists)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from resilience.backends.redis_client import ERRORS
from resilience.engine import CLOSED, Transition

# Circuits read by one script (or pipeline) at most: no script blocks Redis for longer than a
# page of keys takes (2 per circuit in snapshot_many, 1 in index_page).
PAGE = 100
# The index field saying the index is complete (circuit names are never empty); its value is
# when it was last rebuilt (seconds since the epoch).
INDEX_MARK = ""
# In Cluster the index is updated by the client after the script, so a process dying in between
# loses an entry: it is rebuilt from the circuits when older than this (seconds).
CLUSTER_INDEX_MAX_AGE = 300.0


class RedisIndex:
    """``not_closed`` of ``RedisBackend``, and the index's upkeep: rebuilt from the circuits
    when lost, and in Cluster (where the scripts cannot reach it) updated by the client after
    each transition (``_index_transitions``).

    Uses what the backend sets up: ``client``, ``_scripts``, ``_cluster``, ``_outage``,
    ``_fail()``, ``prefix``, ``_index_key``.
    """

    prefix: str
    _index_key: str

    client: Any
    _scripts: dict[str, Any]
    _cluster: bool
    _outage: Any
    _fail: Any

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
            return pairs(flat)
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


def pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat Redis reply ``[key, value, key, value, ...]`` as a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
