"""The Redis backend's sweeps: quiet circuits moved to half-open, idle circuits forgotten."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from resilience.backends.base import OUTBOX_MAX
from resilience.backends.redis_client import ERRORS
from resilience.engine import Transition


class RedisSweep:
    """``advance`` and ``retire`` of ``RedisBackend``: one script per circuit (its keys share
    a Cluster slot), all of them in one pipeline. Both are rare: ``advance`` runs for circuits
    read open past their open time, ``retire`` for idle per-host circuits.

    Uses what the backend sets up: ``client``, ``_scripts``, ``_keys()``, ``_cluster``,
    ``_now_arg()``, ``_outboxed``, ``_outage``, ``_deferred``, ``_open_cache``,
    ``_failure_free``, ``_keys_cache``, ``_fail()``, ``_index_transitions()``,
    ``_index_states()``.
    """

    client: Any
    _scripts: dict[str, Any]
    _keys: Any
    _cluster: bool
    _now_arg: Any
    _outboxed: Any
    _outage: Any
    _deferred: Any
    _open_cache: Any
    _failure_free: dict[str, bool]
    _keys_cache: dict[str, tuple[str, ...]]
    _fail: Any
    _index_transitions: Any
    _index_states: Any

    def _each(self, script: str, names: list[str], args: Any) -> list[Any]:
        """``script`` on each circuit of ``names`` (``args(name)`` its ARGV), in one pipeline:
        the replies, in order."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            self._scripts[script](keys=self._keys(name), args=args(name), client=pipe)
        return pipe.execute()

    def advance(self, names: Iterable[str]) -> dict[str, list[Transition]]:
        wanted = list(dict.fromkeys(names))
        if not wanted or self._outage.active:
            return {}
        now = self._now_arg()
        try:
            replies = self._each("advance", wanted, lambda name: [now, name, OUTBOX_MAX])
        except ERRORS as exc:
            self._fail(exc)
            return {}
        found = {}
        for name, raw in zip(wanted, replies, strict=True):
            if raw:
                transitions = [self._outboxed.parse(t) for t in raw]
                self._open_cache.discard(name)
                if self._cluster:
                    self._index_transitions(name, transitions)
                found[name] = transitions
        return found

    def retire(self, names: Iterable[str], idle_ms: int) -> list[str]:
        # Successes this process still holds back are recent use: not idle.
        wanted = [n for n in dict.fromkeys(names) if self._deferred.peek(n) is None]
        if not wanted or self._outage.active:
            return []
        now = self._now_arg()
        try:
            replies = self._each("retire", wanted, lambda name: [now, name, int(idle_ms)])
        except ERRORS as exc:
            self._fail(exc)
            return []
        retired = [name for name, done in zip(wanted, replies, strict=True) if int(done)]
        for name in retired:
            self._open_cache.discard(name)
            self._failure_free.pop(name, None)
            self._keys_cache.pop(name, None)
            if self._cluster:  # the index lives in another slot there
                self._index_states({name: None})
        return retired
