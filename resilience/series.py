"""Outcome history's data model: the count vector, latency bins, buckets and percentiles."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# A history vector: what one bucket (or a circuit's lifetime totals) holds, in this order.
# Integers only: latency is counted in whole milliseconds (the backend clock's unit).
COUNTS = ("calls", "failures", "slow", "rejected_open", "rejected_bulkhead", "timeouts")
CALLS, FAILURES, SLOW, REJECTED_OPEN, REJECTED_BULKHEAD, TIMEOUTS = range(len(COUNTS))
LATENCY_SUM = len(COUNTS)  # sum of the timed calls' durations, ms
BINS = LATENCY_SUM + 1  # first latency bin

# Upper bounds (ms, inclusive) of the latency bins; one more bin counts what is above the last.
# Log-scale (1-1.5-2-3-5-7 per decade): a percentile read from them is off by less than the
# width of the bin it falls in, at most half its lower bound (docs/history.md, "Accuracy").
BOUNDS_MS = (
    1, 2, 3, 5, 7,
    10, 15, 20, 30, 50, 70,
    100, 150, 200, 300, 500, 700,
    1000, 1500, 2000, 3000, 5000, 7000,
    10_000, 15_000, 20_000, 30_000, 60_000,
)  # fmt: skip
SIZE = BINS + len(BOUNDS_MS) + 1

FINE_MS = 10_000  # 10-second buckets ...
FINE_KEEP_MS = 6 * 3600 * 1000  # ... for the last 6 hours,
COARSE_MS = 60_000  # 1-minute buckets ...
COARSE_KEEP_MS = 7 * 24 * 3600 * 1000  # ... for 7 days (also how long idle totals are kept).
MAX_MINUTES = COARSE_KEEP_MS // 60_000
# Buckets are stored in chunks of this many (one Redis hash each, small enough for Redis'
# compact listpack encoding), and a bucket is kept until its chunk is older than the resolution
# keeps: a 10-second bucket for 6 hours to 6 h 20 min, a 1-minute one for 7 days to 7 d 2 h.
CHUNK = 120
PERCENTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def keep_ms(size_ms: int) -> int:
    """How long buckets of ``size_ms`` are kept."""
    return FINE_KEEP_MS if size_ms == FINE_MS else COARSE_KEEP_MS


def expires_ms(start_ms: int, size_ms: int) -> int:
    """When the bucket of ``size_ms`` starting at ``start_ms`` is forgotten (its chunk's end
    plus what its resolution keeps): reads skip it from then on, whatever is still stored."""
    span = size_ms * CHUNK
    return start_ms // span * span + span + keep_ms(size_ms)


def latency_bin(duration_ms: int) -> int:
    """The index (in a history vector) of the latency bin counting ``duration_ms``."""
    return BINS + bisect.bisect_left(BOUNDS_MS, duration_ms)


def add(into: list[int], delta: Sequence[int]) -> None:
    """Add ``delta`` to ``into`` in place (both history vectors; ``delta`` may be shorter)."""
    for i, value in enumerate(delta):
        if value:
            into[i] += value


def encode(vector: Sequence[int]) -> str:
    """A vector as stored in Redis: decimal, comma-separated, zeros empty, trailing ones cut
    (``"12,1,,,,,130,,4,8"``): a busy bucket stays under Redis' 64-byte listpack limit."""
    text = ",".join(str(v) if v else "" for v in vector)
    return text.rstrip(",")


def decode(text: str | bytes | None) -> list[int]:
    """The vector ``encode`` wrote (all zeros for None)."""
    vector = [0] * SIZE
    if text:
        if isinstance(text, bytes):
            text = text.decode()
        for i, part in enumerate(text.split(",")[:SIZE]):
            if part:
                vector[i] = int(part)
    return vector


def percentile(vector: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of the latency bins of ``vector``, interpolated linearly inside its
    bin (as Prometheus' ``histogram_quantile``); None without a timed call. Above the last
    bound it is that bound."""
    bins = vector[BINS:SIZE]
    total = sum(bins)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(bins):
        if count and seen + count >= rank:
            if i == len(BOUNDS_MS):
                return float(BOUNDS_MS[-1])
            lower = BOUNDS_MS[i - 1] if i else 0
            share = (rank - seen) / count
            return round(lower + (BOUNDS_MS[i] - lower) * share, 3)
        seen += count
    return float(BOUNDS_MS[-1])  # pragma: no cover - rank <= total always ends above


def bucket(start_ms: int, size_ms: int, vector: Sequence[int]) -> dict[str, Any]:
    """One bucket of ``history()`` (the shape of HISTORY_CONTRACT.md / docs/history.md)."""
    out: dict[str, Any] = {
        "start": datetime.fromtimestamp(start_ms / 1000, tz=UTC),
        "seconds": size_ms // 1000,
    }
    out.update(zip(COUNTS, vector, strict=False))
    out["rejected"] = vector[REJECTED_OPEN] + vector[REJECTED_BULKHEAD]
    for key, q in PERCENTILES:
        out[key] = percentile(vector, q)
    return out


def totals(vector: Sequence[int]) -> dict[str, Any]:
    """Lifetime counters of one circuit (``Backend.totals``) from its totals vector."""
    out: dict[str, Any] = dict(zip(COUNTS, vector, strict=False))
    out["latency"] = {
        "bounds_ms": list(BOUNDS_MS),
        "counts": list(vector[BINS:SIZE]),
        "sum_ms": float(vector[LATENCY_SUM]),
    }
    return out


def resolution(since_ms: int, until_ms: int, now_ms: int) -> int:
    """The bucket size of a read: 10 s while the whole range is within the last 6 hours (where
    10-second buckets are kept), else 1 minute."""
    if until_ms - since_ms <= FINE_KEEP_MS and since_ms >= now_ms - FINE_KEEP_MS:
        return FINE_MS
    return COARSE_MS


def starts(since_ms: int, until_ms: int, size_ms: int) -> range:
    """The start of every bucket of ``size_ms`` holding a moment of [since_ms, until_ms]."""
    return range(since_ms // size_ms * size_ms, until_ms // size_ms * size_ms + 1, size_ms)


def check_range(since_ms: Any, until_ms: Any) -> None:
    """``TypeError``/``ValueError`` unless ``since_ms <= until_ms`` are integer milliseconds
    at most 7 days apart (the history kept)."""
    for label, value in (("since_ms", since_ms), ("until_ms", until_ms)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{label} must be an int (Unix milliseconds), not {value!r:.60}")
    if since_ms > until_ms:
        raise ValueError(f"since_ms ({since_ms}) is after until_ms ({until_ms})")
    if until_ms - since_ms > COARSE_KEEP_MS:
        raise ValueError(f"a history read spans at most 7 days, not {until_ms - since_ms} ms")


def window(minutes: Any, now_ms: int) -> tuple[int, int]:
    """``(since_ms, until_ms)`` of the last ``minutes``; ``TypeError`` for anything but a real
    number, ``ValueError`` unless it is finite, above 0 and at most 7 days (10080)."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
        raise TypeError(f"minutes must be a number, not {type(minutes).__name__}")
    if not math.isfinite(minutes) or not 0 < minutes <= MAX_MINUTES:
        raise ValueError(
            f"minutes must be above 0 and at most {MAX_MINUTES} (7 days), not {minutes!r}"
        )
    return now_ms - round(minutes * 60_000), now_ms
