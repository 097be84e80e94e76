"""The memory backend's outcome history: buckets and totals of this process, in dicts."""

from __future__ import annotations

import threading

from resilience import series
from resilience.backends.history import Batches


class _Circuit:
    __slots__ = ("coarse", "fine", "last_ms", "totals")

    def __init__(self) -> None:
        # {bucket start: vector}, in the order written (by time, unless the clock stepped back)
        self.fine: dict[int, list[int]] = {}
        self.coarse: dict[int, list[int]] = {}
        self.totals = [0] * series.SIZE
        self.last_ms = 0  # when counts last arrived: totals are forgotten 7 days after


def _add(buckets: dict[int, list[int]], start: int, vector: list[int]) -> None:
    found = buckets.get(start)
    if found is None:
        buckets[start] = vector.copy()
    else:
        series.add(found, vector)


def _prune(buckets: dict[int, list[int]], size_ms: int, now_ms: int) -> None:
    """Drop the oldest buckets that are forgotten (reads skip any left after a clock step)."""
    for start in list(buckets):
        if series.expires_ms(start, size_ms) > now_ms:
            return
        del buckets[start]


class HistoryTable:
    """``store``, ``read`` and ``totals`` of ``MemoryBackend``'s history, under one lock, with
    the same keeping rules as the Redis backend's keys (``series.expires_ms``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {}

    def store(self, batches: Batches, now_ms: int) -> None:
        with self._lock:
            for start, row in batches.items():
                for name, vector in row.items():
                    circuit = self._circuits.get(name)
                    if circuit is None:
                        circuit = self._circuits[name] = _Circuit()
                    _add(circuit.fine, start, vector)
                    _add(circuit.coarse, start // series.COARSE_MS * series.COARSE_MS, vector)
                    series.add(circuit.totals, vector)
                    circuit.last_ms = now_ms
            for name, circuit in list(self._circuits.items()):
                if circuit.last_ms + series.COARSE_KEEP_MS <= now_ms:
                    del self._circuits[name]
                else:
                    _prune(circuit.fine, series.FINE_MS, now_ms)
                    _prune(circuit.coarse, series.COARSE_MS, now_ms)

    def read(
        self, names: list[str], starts: range, size_ms: int, now_ms: int
    ) -> dict[str, list[list[int]]]:
        out = {}
        with self._lock:
            for name in names:
                circuit = self._circuits.get(name)
                buckets = {} if circuit is None else (
                    circuit.fine if size_ms == series.FINE_MS else circuit.coarse
                )  # fmt: skip
                out[name] = [
                    buckets[s].copy()
                    if s in buckets and series.expires_ms(s, size_ms) > now_ms
                    else [0] * series.SIZE
                    for s in starts
                ]
        return out

    def totals(self, names: list[str], now_ms: int) -> dict[str, list[int]]:
        out = {}
        with self._lock:
            for name in names:
                circuit = self._circuits.get(name)
                alive = circuit is not None and circuit.last_ms + series.COARSE_KEEP_MS > now_ms
                out[name] = circuit.totals.copy() if alive else [0] * series.SIZE  # type: ignore[union-attr]
        return out
