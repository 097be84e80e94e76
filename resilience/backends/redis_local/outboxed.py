"""The exact JSON of the transitions the Redis backend saw, for a one-command acknowledgement."""

from __future__ import annotations

import threading

from resilience.engine import Transition


class Outboxed:
    """The exact JSON of transitions this process saw (script replies, outbox reads), so that
    acknowledging one is a single ``LREM`` of its entry; the oldest are forgotten past ``limit``.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._raw: dict[tuple[str, str], str] = {}  # (circuit, id) -> JSON, oldest first
        self._lock = threading.Lock()

    def parse(self, raw: str) -> Transition:
        transition = Transition.from_json(raw)
        with self._lock:
            self._raw[(transition.circuit, transition.id)] = raw
            if len(self._raw) > self._limit:
                del self._raw[next(iter(self._raw))]
        return transition

    def take(self, name: str, ids: list[str]) -> list[str] | None:
        """The entries of ``ids`` in the outbox of ``name``; None if one was never seen here."""
        with self._lock:
            raws = [self._raw.pop((name, i), None) for i in ids]
        return None if None in raws else raws  # type: ignore[return-value]
