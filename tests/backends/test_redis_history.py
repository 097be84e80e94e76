"""The Redis backend's outcome history: real processes summed exactly, Redis down during a
send, keys that expire on their own, one round trip per send or read, bytes per circuit."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import Counter

import pytest
from django.db import connection

from resilience import breaker, circuit_breaker, series
from resilience.backends import get_backend
from resilience.exceptions import BackendError
from tests.backends.history_contract import fine, vector
from tests.backends.redis_helpers import cost, fault_backend, make_backend
from tests.support.historyworker import SHARED, SLOW, TRIPPING, outcomes
from tests.support.spawned import gather

PROCESSES = 4


@pytest.mark.django_db(transaction=True)
def test_processes_writing_at_once_sum_exactly(monkeypatch, settings, redis_url):
    resilience = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "prefix": "hist", "socket_timeout": 2.0},
        "POLICIES": {
            SHARED: {"failure_threshold": 1_000_000},
            SLOW: {"slow_call_ms": 150, "failure_threshold": 1_000_000},
            TRIPPING: {"failure_threshold": 1, "recovery_timeout": 3600},
        },
    }
    settings.RESILIENCE = resilience
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.support.procsettings")
    monkeypatch.setenv("RESILIENCE_TEST_DB_NAME", str(connection.settings_dict["NAME"]))
    monkeypatch.setenv("RESILIENCE_TEST_SETTINGS", json.dumps(resilience))
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=outcomes, args=(start, results)) for _ in range(PROCESSES)]
    made = sum((Counter(o) for o in gather(procs, results, timeout=120)), Counter())
    assert made[f"{SHARED}:calls"] == PROCESSES * 5 * 50
    assert made[f"{SLOW}:calls"] == PROCESSES * 5 * 2
    assert made[f"{TRIPPING}:calls"] + made[f"{TRIPPING}:rejected"] == PROCESSES * 20
    # Every process has exited: its last counts were sent at exit.
    backend = get_backend()
    names = [SHARED, SLOW, TRIPPING]
    totals = backend.totals(names)
    buckets = backend.history_many(names, *series.window(10, backend.clock.now_ms()))
    summed = {
        name: {k: sum(b[k] for b in buckets[name]) for k in (*series.COUNTS, "rejected")}
        for name in names
    }
    for name in names:
        assert {k: totals[name][k] for k in series.COUNTS} == {
            k: summed[name][k] for k in series.COUNTS
        }, name
        assert (summed[name]["calls"], summed[name]["rejected"]) == (
            made[f"{name}:calls"],
            made[f"{name}:rejected"],
        ), name
    assert summed[SHARED]["failures"] == made[f"{SHARED}:failures"]
    assert summed[TRIPPING]["failures"] == made[f"{TRIPPING}:failures"]
    assert summed[TRIPPING]["rejected_open"] == made[f"{TRIPPING}:rejected"]
    # The slow calls (200 ms against 150) are slow, and failures (timeouts) when the watchdog
    # judged them while they ran (else slow successes); SLOW is tracked: every call timed.
    slow = summed[SLOW]
    assert slow["slow"] == made[f"{SLOW}:calls"]
    assert slow["failures"] == slow["timeouts"]
    latency = totals[SLOW]["latency"]
    assert sum(latency["counts"][series.BOUNDS_MS.index(100) + 1 :]) == made[f"{SLOW}:calls"]
    # SHARED is not tracked: 1 call in 8 timed (it goes through Breaker._enter on Redis).
    assert sum(totals[SHARED]["latency"]["counts"]) == pytest.approx(
        made[f"{SHARED}:calls"] / 8, abs=PROCESSES * 5
    )


def _last_minutes(backend, minutes):
    return series.window(minutes, backend.clock.now_ms())


def test_a_send_is_one_round_trip_for_every_circuit(redis_url, clock, monkeypatch):
    backend = make_backend(redis_url, clock)
    names = [f"c{i}" for i in range(50)]
    try:
        now = fine(clock.now_ms())
        backend.store_history({now: {n: vector(calls=i + 1) for i, n in enumerate(names)}})
        trips, commands = cost(
            backend.client,
            lambda: backend.store_history({now: {n: vector(calls=1) for n in names}}),
            monkeypatch,
        )
        assert (trips, commands.get("evalsha")) == (1, 50)
        read = {}
        trips, commands = cost(
            backend.client,
            lambda: read.update(backend.history_many(names, now - 3600_000, now)),
            monkeypatch,
        )
        assert (trips, commands) == (1, {"hmget": 200})  # an hour: 4 hashes of 20 minutes each
        assert [read[n][-1]["calls"] for n in names] == [i + 2 for i in range(50)]
        trips, _ = cost(backend.client, lambda: read.update(backend.totals(names)), monkeypatch)
        assert trips == 1
        assert [read[n]["calls"] for n in names] == [i + 2 for i in range(50)]
    finally:
        backend.close()


def test_keys_expire_when_their_data_is_forgotten(redis_url, clock):
    backend = make_backend(redis_url, clock)
    try:
        now = fine(clock.now_ms())
        backend.store_history({now: {"ttl": vector(calls=1)}})
        keys = sorted(backend.client.keys(f"{backend.prefix}:*"))
        base = f"{backend.prefix}:v1:{{ttl}}"
        assert keys == sorted(
            [f"{base}:h10:{now // 10_000 // 120}", f"{base}:h60:{now // 60_000 // 120}",
             f"{base}:totals"]
        )  # fmt: skip
        ttl = {key.rsplit(":", 2)[-2]: backend.client.pttl(key) for key in keys}
        expected_fine = series.expires_ms(now, series.FINE_MS) - clock.now_ms()
        expected_coarse = series.expires_ms(now // 60_000 * 60_000, 60_000) - clock.now_ms()
        assert expected_fine - 5_000 < ttl["h10"] <= expected_fine
        assert 6 * 3600_000 < ttl["h10"] <= (6 * 3600 + 20 * 60) * 1000
        assert expected_coarse - 5_000 < ttl["h60"] <= expected_coarse
        assert backend.client.pttl(f"{base}:totals") > series.COARSE_KEEP_MS - 5_000
    finally:
        backend.close()


def test_lost_scripts_are_loaded_again(redis_url, clock):
    backend = make_backend(redis_url, clock)
    try:
        now = fine(clock.now_ms())
        backend.store_history({now: {"noscript": vector(calls=1)}})
        backend.client.script_flush()
        backend.store_history({now: {"noscript": vector(calls=2)}})
        assert backend.history("noscript", now, now)[0]["calls"] == 3
    finally:
        backend.close()


def test_redis_down_during_sends_keeps_the_buckets_and_never_raises(redis_proc, settings):
    backend = fault_backend(redis_proc)
    clock = backend.clock
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "clock": clock, "socket_timeout": 0.25,
                    "reprobe_interval": 0.2, "prefix": backend.prefix},
    }  # fmt: skip
    backend.close()
    backend = get_backend()

    @circuit_breaker("outage")
    def call():
        return "ok"

    call()
    backend.flush()
    first = fine(clock.now_ms())
    redis_proc.pause()  # hung: the next send times out, and may still land once it resumes
    clock.advance(10)
    for _ in range(3):
        call()  # the call path never raises (ON_BACKEND_ERROR "local")
    backend.flush()  # the send times out: dropped (it may land), never raised
    clock.advance(10)
    for _ in range(5):
        call()
    backend.flush()  # Redis known down: kept, with its bucket
    clock.advance(10)
    call()
    backend.flush()  # kept too
    with pytest.raises(BackendError, match="history cannot be read"):
        breaker("outage").history(minutes=1)
    redis_proc.resume()
    assert backend.probe()
    clock.advance(10)
    backend.flush()  # everything kept goes now, each in its own bucket
    calls = [b["calls"] for b in backend.history("outage", first, clock.now_ms())]
    assert calls[0] == 1 and calls[2:] == [5, 1, 0]
    assert calls[1] in (0, 3)  # the failed send
    assert backend.totals(["outage"])["outage"]["calls"] == 7 + calls[1]


def test_a_forked_child_sends_its_own_counts_only(redis_url, clock, settings):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "clock": clock, "socket_timeout": 2.0, "prefix": "fork"},
    }
    backend = get_backend()

    @circuit_breaker("forked")
    def call():
        return "ok"

    for _ in range(3):
        call()  # not sent yet when the child is forked
    pid = os.fork()
    if pid == 0:  # the child: 5 calls of its own, sent at exit
        try:
            for _ in range(5):
                call()
            get_backend().flush()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    backend.flush()
    assert backend.totals(["forked"])["forked"]["calls"] == 8


def test_bytes_per_circuit_for_a_busy_day(redis_url, clock):
    """What docs/history.md states: MEMORY USAGE of a circuit's keys after 24 hours with calls
    in every 10-second bucket (a few latency bins each), and what the keeping rules leave."""
    backend = make_backend(redis_url, clock)
    try:
        start = fine(clock.now_ms())
        day = 24 * 3600 * 1000
        for t in range(start, start + day, series.FINE_MS):
            latencies = [3] * 700 + [40] * 250 + [200] * 45 + [2500] * 5
            counts = vector(calls=12_345, failures=123, slow=50, rejected_open=7, timeouts=2,
                            latencies=latencies)  # fmt: skip
            backend.store_history({t: {"busy": counts}})
        clock.set(start + day)
        client = backend.client
        keys = client.keys(f"{backend.prefix}:v1:{{busy}}:*")
        fine_keys = [k for k in keys if ":h10:" in k]
        coarse_keys = [k for k in keys if ":h60:" in k]
        size = {k: client.memory_usage(k, samples=0) for k in keys}
        fine_bytes = sum(size[k] for k in fine_keys)
        coarse_bytes = sum(size[k] for k in coarse_keys)
        totals_bytes = client.memory_usage(backend._totals_key("busy"), samples=0)
        print(
            f"\nbusy day: {len(fine_keys)} hashes of 10-s buckets = {fine_bytes} B, "
            f"{len(coarse_keys)} of 1-min buckets = {coarse_bytes} B, totals {totals_bytes} B"
        )
        encodings = {client.object("encoding", k) for k in fine_keys + coarse_keys}
        assert encodings == {"listpack"}  # the compact encoding: values under 64 bytes
        # Per day of 1-minute buckets (kept 7 days) and the 6 hours of 10-second buckets.
        assert coarse_bytes / len(coarse_keys) * 12 < 100_000
        assert fine_bytes / len(fine_keys) * 18 < 150_000
    finally:
        backend.close()


def test_a_long_outage_keeps_the_last_fifteen_minutes_of_buckets(redis_proc, settings):
    from resilience.backends.history import MAX_UNSENT

    clock = fault_backend(redis_proc).clock
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "clock": clock, "socket_timeout": 0.25,
                    "reprobe_interval": 3600, "prefix": "long"},
    }  # fmt: skip
    backend = get_backend()

    @circuit_breaker("long-outage")
    def call():
        return "ok"

    redis_proc.pause()
    call()
    backend.flush()  # times out: Redis is known down from now on (no re-probe for an hour)
    first = fine(clock.now_ms())
    for _ in range(MAX_UNSENT + 10):
        clock.advance(10)
        call()
        backend.flush()  # not even tried: kept
    redis_proc.resume()
    assert backend.probe()
    backend.flush()
    calls = [b["calls"] for b in backend.history("long-outage", first, clock.now_ms())]
    assert calls[-MAX_UNSENT:] == [1] * MAX_UNSENT  # the newest, each in its own bucket
    assert sum(calls) == MAX_UNSENT + calls[0]  # the first send may have landed (0 or 1)


_KILLED_ONLY = """
import django
django.setup()
from resilience import CircuitOpenError, circuit_breaker
from resilience.policies import registry
registry.background = False

@circuit_breaker("killed-only")
def call():
    return "never"

for _ in range(7):
    try:
        call()
    except CircuitOpenError:
        pass
"""


@pytest.mark.django_db(transaction=True)
def test_a_process_whose_only_calls_are_refused_by_a_kill_switch_sends_them(redis_url):
    """A forced-open circuit refuses without asking the backend: a worker whose calls all go
    to a kill-switched circuit (an incident) must still put its refusals in the history."""
    import subprocess
    import sys

    resilience = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "prefix": "killed", "socket_timeout": 2.0},
        "POLICIES": {"killed-only": {"mode": "forced_open"}},
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SETTINGS": json.dumps(resilience),
    }
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_ONLY], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    backend = make_backend(redis_url, None, prefix="killed")
    try:
        assert backend.totals(["killed-only"])["killed-only"]["rejected_open"] == 7
    finally:
        backend.close()


def test_a_closed_feed_sends_nothing_more(redis_url, clock, settings):
    """The feed thread takes the list of feeds, then flushes each: a backend closed meanwhile
    (a settings change) must not have its feed send again what the new backend sends."""
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "clock": clock, "socket_timeout": 2.0, "prefix": "late"},
    }
    old = get_backend()
    feed = old._history_feed  # what the thread holds while the backend is replaced

    @circuit_breaker("late-flush")
    def call():
        return "ok"

    call()
    settings.RESILIENCE = {**settings.RESILIENCE}  # closes `old`, which sends its count
    call()  # builds the new backend
    feed.flush()  # the thread, late: the old feed is closed
    get_backend().flush()
    assert get_backend().totals(["late-flush"])["late-flush"]["calls"] == 2
