"""The outcome history every backend keeps (docs/history.md): subclass ``HistoryContract`` and
provide a ``backend`` fixture built on the ``clock`` fixture (a ``ManualClock``).

Counts are stored through ``Backend.store_history`` (what the feed of resilience.backends.history
sends); tests/test_history.py covers the way from protected calls to these counts.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest

from resilience import series

BUCKET_KEYS = {
    "start", "seconds", "calls", "failures", "slow", "rejected", "rejected_open",
    "rejected_bulkhead", "timeouts", "p50_ms", "p95_ms", "p99_ms",
}  # fmt: skip
HOUR_MS = 3600 * 1000


def vector(calls=0, failures=0, slow=0, rejected_open=0, rejected_bulkhead=0, timeouts=0,
           latencies=()):  # fmt: skip
    """A history vector with these counts and one timed call per item of ``latencies`` (ms)."""
    out = [0] * series.SIZE
    out[: series.LATENCY_SUM] = [calls, failures, slow, rejected_open, rejected_bulkhead, timeouts]
    for ms in latencies:
        out[series.LATENCY_SUM] += ms
        out[series.latency_bin(ms)] += 1
    return out


def fine(ms):
    return ms // series.FINE_MS * series.FINE_MS


def counts(bucket):
    return {k: bucket[k] for k in ("calls", "failures", "slow", "rejected", "timeouts")}


class HistoryContract:
    """Memory and Redis keep the same history, read the same way."""

    @pytest.fixture
    def name(self):
        return f"history-{uuid.uuid4().hex[:10]}"

    def test_an_unknown_circuit_has_a_regular_row_of_empty_buckets(self, backend, clock, name):
        now = clock.now_ms()
        buckets = backend.history(name, now - HOUR_MS, now)
        assert len(buckets) == 361  # the hour, both ends' buckets included
        for i, bucket in enumerate(buckets):
            assert set(bucket) == BUCKET_KEYS
            assert bucket["start"] == datetime.fromtimestamp(
                (fine(now - HOUR_MS) + i * 10_000) / 1000, tz=UTC
            )
            assert bucket["seconds"] == 10
            assert counts(bucket) == dict.fromkeys(counts(bucket), 0)
            assert (bucket["p50_ms"], bucket["p95_ms"], bucket["p99_ms"]) == (None, None, None)
        assert backend.totals([name])[name]["calls"] == 0

    def test_counts_land_in_their_bucket_and_add_up(self, backend, clock, name):
        now = clock.now_ms()
        backend.store_history({fine(now): {name: vector(calls=5, failures=2, rejected_open=3)}})
        backend.store_history({fine(now): {name: vector(calls=1, rejected_bulkhead=4)}})
        clock.advance(10)
        backend.store_history({fine(now) + 10_000: {name: vector(calls=7, slow=1, timeouts=1)}})
        buckets = backend.history(name, now - 20_000, clock.now_ms())
        assert [b["calls"] for b in buckets] == [0, 0, 6, 7]
        newest, before = buckets[-1], buckets[-2]
        assert (before["failures"], before["rejected_open"], before["rejected_bulkhead"]) == (
            2,
            3,
            4,
        )
        assert before["rejected"] == 7
        assert (newest["slow"], newest["timeouts"], newest["rejected"]) == (1, 1, 0)

    def test_several_buckets_in_one_store_and_several_circuits(self, backend, clock, name):
        other = name + "-b"
        now = fine(clock.now_ms())
        backend.store_history(
            {
                now - 20_000: {name: vector(calls=1), other: vector(calls=10)},
                now: {name: vector(calls=2)},
            }
        )
        read = backend.history_many([name, other, name], now - 20_000, now)
        assert list(read) == [name, other]
        assert [b["calls"] for b in read[name]] == [1, 0, 2]
        assert [b["calls"] for b in read[other]] == [10, 0, 0]
        assert backend.history_many([], now - 20_000, now) == {}

    def test_percentiles_come_from_the_latency_bins(self, backend, clock, name):
        now = fine(clock.now_ms())
        latencies = [4] * 50 + [40] * 45 + [900] * 4 + [120_000]
        backend.store_history({now: {name: vector(calls=100, latencies=latencies)}})
        (bucket,) = backend.history(name, now, now)
        # 4 ms is in (3, 5], 40 ms in (30, 50], 900 ms in (700, 1000]; interpolated inside.
        assert 3 < bucket["p50_ms"] <= 5
        assert 30 < bucket["p95_ms"] <= 50
        assert 700 < bucket["p99_ms"] <= 1000
        backend.store_history({now: {name: vector(latencies=[120_000] * 10)}})
        (bucket,) = backend.history(name, now, now)
        assert bucket["p99_ms"] == 60_000.0  # above the last bound: that bound

    def test_older_than_six_hours_reads_minute_buckets_rolled_up(self, backend, clock, name):
        start = clock.now_ms() // 60_000 * 60_000
        for i in range(6):  # one minute of 10-second buckets
            backend.store_history({start + i * 10_000: {name: vector(calls=i + 1, failures=1)}})
        clock.advance(7 * 3600)
        now = clock.now_ms()
        buckets = backend.history(name, start, now)
        assert {b["seconds"] for b in buckets} == {60}
        assert buckets[0]["start"].timestamp() * 1000 == start
        assert (buckets[0]["calls"], buckets[0]["failures"]) == (21, 6)
        assert sum(b["calls"] for b in buckets) == 21
        # A range of 6 hours or less ending now still reads 10-second buckets.
        assert {b["seconds"] for b in backend.history(name, now - 6 * HOUR_MS, now)} == {10}

    def test_minute_buckets_and_totals_are_forgotten_after_seven_days(self, backend, clock, name):
        start = fine(clock.now_ms())
        backend.store_history({start: {name: vector(calls=3)}})
        clock.advance(7 * 24 * 3600 - 1)
        now = clock.now_ms()
        assert sum(b["calls"] for b in backend.history(name, now - 7 * 24 * HOUR_MS, now)) == 3
        assert backend.totals([name])[name]["calls"] == 3
        clock.advance(2 * 3600 + 1)  # past the 2-hour chunk of that minute too
        now = clock.now_ms()
        assert sum(b["calls"] for b in backend.history(name, now - 7 * 24 * HOUR_MS, now)) == 0
        assert backend.totals([name])[name]["calls"] == 0

    def test_totals_sum_everything_ever_stored(self, backend, clock, name):
        now = fine(clock.now_ms())
        backend.store_history({now: {name: vector(calls=2, failures=1, latencies=[1, 250])}})
        clock.advance(3 * 24 * 3600)
        later = fine(clock.now_ms())
        backend.store_history({later: {name: vector(calls=1, slow=1, latencies=[70_000])}})
        totals = backend.totals([name, "never-" + name])
        assert totals["never-" + name]["latency"]["counts"] == [0] * (len(series.BOUNDS_MS) + 1)
        got = totals[name]
        assert {k: got[k] for k in series.COUNTS} == {
            "calls": 3, "failures": 1, "slow": 1, "rejected_open": 0, "rejected_bulkhead": 0,
            "timeouts": 0,
        }  # fmt: skip
        latency = got["latency"]
        assert latency["bounds_ms"] == list(series.BOUNDS_MS)
        assert latency["sum_ms"] == 70_251.0
        assert sum(latency["counts"]) == 3
        assert latency["counts"][0] == latency["counts"][series.BOUNDS_MS.index(300)] == 1
        assert latency["counts"][-1] == 1

    @pytest.mark.parametrize(
        ("since", "until", "error"),
        [
            (10, 5, ValueError),
            (0, 7 * 24 * HOUR_MS + 1, ValueError),
            (1.5, 10, TypeError),
            (True, 10, TypeError),
            ("0", 10, TypeError),
            (0, math.nan, TypeError),
        ],
    )
    def test_a_bad_range_is_refused_clearly(self, backend, name, since, until, error):
        with pytest.raises(error, match="since_ms|until_ms|7 days"):
            backend.history_many([name], since, until)

    @pytest.mark.parametrize("names", ["one-name", 42, [1, 2], None])
    def test_names_must_be_a_list_of_strings(self, backend, names):
        with pytest.raises(TypeError, match="name"):
            backend.history_many(names, 0, 10)
        with pytest.raises(TypeError, match="name"):
            backend.totals(names)
