"""The bulkhead across real processes sharing a private Redis: the cap holds for all of them
(the upstream server counts what it sees), and a killed process's slots come back."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections import Counter

import pytest
import requests
from django.db import connection

from resilience import BulkheadFullError, breaker
from resilience.contrib.requests import CircuitBreakerAdapter
from resilience.engine import Policy
from resilience.models import BreakerPolicy
from tests.support.slotworker import CIRCUIT, callers, holder
from tests.support.spawned import gather, stop
from tests.support.upstream import HangingUpstream
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESSES, THREADS, CAP = 16, 8, 3
SERVED = 40  # calls the upstream answers before the callers stop


def _stop_when_served(upstream: HangingUpstream, enough, timeout: float) -> None:
    """Set ``enough`` once ``SERVED`` calls reached the upstream (at most ``timeout`` s): the
    callers run for a number of calls, not for a time a loaded machine may spend starting."""
    wait_until(lambda: upstream.hits_since_hang >= SERVED, timeout, 0.02)
    enough.set()


def _share_state(monkeypatch, settings, redis_url: str) -> None:
    """This process and every process spawned from now on: the test database, state in Redis,
    the cap in ``POLICIES`` too (in force from a process's first call, before its background
    thread has read the row, as docs/hangs.md recommends)."""
    BreakerPolicy.objects.create(name=CIRCUIT, max_concurrent_calls=CAP, alert_on_open=False)
    resilience = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "prefix": "bulkhead", "socket_timeout": 2.0},
        "POLICIES": {CIRCUIT: {"max_concurrent_calls": CAP}},
    }
    settings.RESILIENCE = resilience
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.support.procsettings")
    monkeypatch.setenv("RESILIENCE_TEST_DB_NAME", str(connection.settings_dict["NAME"]))
    monkeypatch.setenv("RESILIENCE_TEST_SETTINGS", json.dumps(resilience))


def test_sixteen_processes_never_exceed_the_cap(monkeypatch, settings, redis_url):
    _share_state(monkeypatch, settings, redis_url)
    ctx = multiprocessing.get_context("spawn")
    start, results, enough = ctx.Barrier(PROCESSES), ctx.Queue(), ctx.Event()
    with HangingUpstream() as upstream:
        upstream.hang(0.05)  # every call takes 50 ms: 128 threads overlap all the time
        procs = [
            ctx.Process(target=callers, args=(upstream.url, THREADS, 60.0, start, results, enough))
            for _ in range(PROCESSES)
        ]
        stopper = threading.Thread(target=_stop_when_served, args=(upstream, enough, 120))
        stopper.start()
        try:
            outcomes = gather(procs, results, timeout=180)
        finally:
            enough.set()
            stopper.join()
        seen = upstream.max_in_flight
    counts = sum((Counter(o) for o in outcomes), Counter())
    assert set(counts) == {"ok", "refused"}, counts
    assert seen == CAP, (seen, counts)  # reached, never passed
    assert counts["ok"] >= SERVED and counts["refused"] > counts["ok"], counts
    # Every slot given back, at once: also those of a process's last calls, which exit sends.
    assert breaker(CIRCUIT).snapshot()["in_flight"] == 0


def test_slots_of_a_killed_process_come_back_within_the_lease(monkeypatch, settings, redis_url):
    lease = Policy(max_concurrent_calls=CAP).slot_lease_ms / 1000
    _share_state(monkeypatch, settings, redis_url)
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter(CIRCUIT))
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    with HangingUpstream(hang_seconds=60) as upstream:
        upstream.hang()
        proc = ctx.Process(target=holder, args=(upstream.url, CAP, results))
        proc.start()
        try:
            assert results.get(timeout=120) == "started"
            wait_until(lambda: upstream.in_flight >= CAP, 30, 0.02)
            assert upstream.in_flight == CAP
            assert breaker(CIRCUIT).snapshot()["in_flight"] == CAP
            with pytest.raises(BulkheadFullError):
                session.get(upstream.url, timeout=5)  # full for this process too
            proc.kill()  # SIGKILL: no finally, no atexit, nothing given back
            proc.join(10)
            killed = time.monotonic()
            assert breaker(CIRCUIT).snapshot()["in_flight"] == CAP  # still held by the dead
            wait_until(lambda: not breaker(CIRCUIT).snapshot()["in_flight"], lease + 3, 0.05)
            came_back = time.monotonic() - killed
        finally:
            stop([proc])
        upstream.heal()
        assert session.get(upstream.url, timeout=5).status_code == 200
    assert came_back <= lease + 0.5, (came_back, lease)
