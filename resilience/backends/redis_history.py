"""The Redis backend's outcome history: buckets in small per-chunk hashes, written by a script."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from redis.exceptions import NoScriptError

from resilience import series
from resilience.backends.history import Batches
from resilience.backends.redis_client import ERRORS
from resilience.exceptions import BackendError

logger = logging.getLogger("resilience")


class RedisHistory:
    """``store_history``, ``read_history`` and ``read_totals`` of ``RedisBackend``.

    A circuit's 10-second buckets live in one hash per chunk of ``series.CHUNK`` buckets
    (``…:{name}:h10:<chunk>``, field: the bucket's place in the chunk, value: its vector as
    ``series.encode`` writes it), its 1-minute buckets likewise (``…:h60:<chunk>``), its totals
    in ``…:totals`` (``v``: the vector, ``at``: when last written). Each key expires when its
    data is forgotten, so nothing needs trimming. Uses what the backend sets up: ``client``,
    ``clock``, ``prefix``, ``_scripts``, ``_outage``, ``_fail()``.
    """

    prefix: str
    client: Any
    clock: Any
    _scripts: dict[str, Any]
    _outage: Any
    _fail: Any

    def _base(self, name: str) -> str:
        return f"{self.prefix}:v1:{{{name}}}"  # the circuit's hash tag: one Cluster slot

    @staticmethod
    def _place(size_ms: int, start_ms: int) -> tuple[str, str]:
        """Where the bucket of ``size_ms`` at ``start_ms`` is: its hash's key suffix (after the
        circuit's base) and its field there."""
        chunk, place = divmod(start_ms // size_ms, series.CHUNK)
        return f"{'h10' if size_ms == series.FINE_MS else 'h60'}:{chunk}", str(place)

    def _totals_key(self, name: str) -> str:
        return self._base(name) + ":totals"

    def store_history(self, batches: Batches) -> bool:
        """All circuits and buckets in one pipeline of scripts (see history.lua)."""
        if self._outage.active:
            self._outage.maybe_probe()  # the feed's sends probe too: kept until Redis is back
            return False
        now = self.clock.now_ms()
        calls = []
        for start, row in batches.items():
            minute = start // series.COARSE_MS * series.COARSE_MS
            fine, fine_field = self._place(series.FINE_MS, start)
            coarse, coarse_field = self._place(series.COARSE_MS, minute)
            for name, vector in row.items():
                base = self._base(name)
                keys = (f"{base}:{fine}", f"{base}:{coarse}", f"{base}:totals")
                args = (
                    fine_field,
                    coarse_field,
                    series.expires_ms(start, series.FINE_MS) - now,
                    series.expires_ms(minute, series.COARSE_MS) - now,
                    series.COARSE_KEEP_MS,
                    now,
                    series.encode(vector),
                )
                calls.append((*keys, *args))
        try:
            self._run_history_scripts(calls)
        except ERRORS as exc:  # may have landed in part: never sent twice (docs/history.md)
            self._fail(exc)
        return True

    def _run_history_scripts(self, calls: list[tuple[Any, ...]]) -> None:
        script = self._scripts["history"]
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                pipe.evalsha(script.sha, 3, *call)
            results = pipe.execute(raise_on_error=False)
            missing = [c for c, r in zip(calls, results, strict=True) if _no_script(r)]
            errors = [r for r in results if isinstance(r, Exception) and not _no_script(r)]
            if errors:
                logger.error("resilience: %d history writes refused: %s", len(errors), errors[0])
            if not missing or attempt:
                return
            # Redis lost its scripts (restarted, SCRIPT FLUSH): nothing of those ran.
            self.client.script_load(script.script)
            calls = missing

    def read_history(
        self, names: list[str], starts: range, size_ms: int
    ) -> dict[str, list[list[int]]]:
        now = self.clock.now_ms()
        by_hash: dict[str, list[str]] = defaultdict(list)  # key suffix -> fields, in order
        for start in starts:
            suffix, field = self._place(size_ms, start)
            by_hash[suffix].append(field)
        replies = self._read_pipeline(
            [(f"{self._base(name)}:{suffix}", fields)
             for name in names for suffix, fields in by_hash.items()]
        )  # fmt: skip
        out = {}
        for name in names:
            values = [value for _ in by_hash for value in next(replies)]
            out[name] = [
                series.decode(value) if series.expires_ms(s, size_ms) > now else [0] * series.SIZE
                for s, value in zip(starts, values, strict=True)
            ]
        return out

    def read_totals(self, names: list[str]) -> dict[str, list[int]]:
        now = self.clock.now_ms()
        replies = self._read_pipeline([(self._totals_key(name), ["v", "at"]) for name in names])
        out = {}
        for name in names:
            value, at = next(replies)
            alive = at is not None and int(at) + series.COARSE_KEEP_MS > now
            out[name] = series.decode(value if alive else None)
        return out

    def _read_pipeline(self, reads: list[tuple[str, list[str]]]) -> Any:
        """An iterator over the ``HMGET`` replies of ``reads`` (key, fields), all read in one
        round trip; ``BackendError`` if Redis cannot be read (or is known to be down)."""
        if self._outage.fresh():
            self._outage.maybe_probe()
            raise BackendError(f"the outcome history cannot be read: {self._outage.reason}")
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, fields in reads:
                pipe.hmget(key, fields)
            return iter(pipe.execute())
        except ERRORS as exc:
            self._fail(exc)
            raise BackendError(
                f"the outcome history cannot be read: {self._outage.reason}"
            ) from exc


def _no_script(result: Any) -> bool:
    return isinstance(result, NoScriptError)
