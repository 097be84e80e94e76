"""RedisBackend when the server is down, hung, restarted or read-only: never raises, degrades as
ON_BACKEND_ERROR says, and recovers through the re-probe."""

from __future__ import annotations

import logging
import time

import pytest
import redis as redis_py

from resilience.backends.redis_fallback import FallbackTicket
from resilience.clock import ManualClock
from resilience.engine import Policy
from tests.backends.contract import fail
from tests.backends.redis_helpers import command_calls, fault_backend, make_backend
from tests.support.waiting import wait_until

# --- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["local", "allow", "deny"])
def test_server_down_never_raises_and_follows_on_backend_error(redis_proc, settings, mode):
    settings.RESILIENCE = {"ON_BACKEND_ERROR": mode}
    backend = fault_backend(redis_proc, reprobe_interval=60)
    policy = Policy(failure_threshold=2, recovery_timeout=30)
    try:
        assert backend.acquire("down", policy).admitted
        redis_proc.stop()
        tickets, results = [], []
        for _ in range(3):
            tickets.append(backend.acquire("down", policy))
            results.append(backend.record(tickets[-1], policy, False, 1))
        health = backend.health()
        assert health["degraded"] and health["reason"]
        assert backend.snapshot("down", policy)["state"] in ("closed", "open")
        assert len(backend.reset("down", policy)) == 1
        backend.outbox("down")
        backend.ack("down", ["x"])
        if mode == "local":  # the per-process state machine took over
            assert [t.admitted for t in tickets] == [True, True, False]
            assert [t.kind for r in results for t in r] == ["opened"]
        elif mode == "allow":
            assert all(t.admitted for t in tickets) and results == [[], [], []]
        else:
            assert not any(t.admitted for t in tickets)
            assert {t.retry_after_ms for t in tickets} == {60_000}
    finally:
        backend.close()


def test_hung_server_costs_one_socket_timeout_then_nothing(redis_proc):
    backend = fault_backend(redis_proc, socket_timeout=0.1, reprobe_interval=60)
    policy = Policy()
    try:
        assert backend.acquire("hung", policy).admitted  # a pooled connection exists
        redis_proc.pause()
        start = time.monotonic()
        ticket = backend.acquire("hung", policy)
        first = time.monotonic() - start
        assert ticket.admitted and isinstance(ticket, FallbackTicket)
        assert 0.09 <= first < 0.1 + 1.0, first  # one socket_timeout, plus a loaded machine
        start = time.monotonic()
        for _ in range(200):
            backend.record(backend.acquire("hung", policy), policy, False, 1)
        assert time.monotonic() - start < 2.0  # not 200 timeouts: no Redis traffic while degraded
    finally:
        redis_proc.resume()
        backend.close()


def test_hung_server_on_a_new_connection_costs_one_timeout(redis_proc):
    backend = fault_backend(redis_proc, socket_timeout=0.1, reprobe_interval=60)
    try:
        redis_proc.pause()
        start = time.monotonic()
        assert backend.acquire("hung-new", Policy()).admitted
        assert time.monotonic() - start < 0.1 * 2 + 0.25
    finally:
        redis_proc.resume()
        backend.close()


def test_recovery_after_restart_via_reprobe(redis_proc):
    backend = fault_backend(redis_proc)
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    try:
        redis_proc.stop()
        local = backend.acquire("restart", policy)
        assert isinstance(local, FallbackTicket)
        redis_proc.start()
        assert wait_until(
            lambda: (backend.acquire("restart", policy), backend)[1].health()["degraded"] is False
        )
        shared = backend.acquire("restart", policy)
        assert type(shared) is not FallbackTicket
        # The local ticket still reports to the local state it came from.
        [opened] = backend.record(local, policy, False, 1)
        assert opened.kind == "opened"
        assert backend.snapshot("restart", policy)["state"] == "closed"  # Redis untouched
        assert backend.outbox("restart") == [opened]  # kept for the drain
        backend.ack("restart", [opened.id])
        assert backend.outbox("restart") == []
    finally:
        backend.close()


def test_a_restart_between_calls_is_not_an_outage(redis_proc):
    """Pooled connections to the old server are detected as closed and replaced."""
    backend = fault_backend(redis_proc, reprobe_interval=60)
    try:
        assert backend.acquire("restarted", Policy()).admitted
        redis_proc.restart()
        ticket = backend.acquire("restarted", Policy())
        assert type(ticket) is not FallbackTicket
        assert backend.health()["degraded"] is False
    finally:
        backend.close()


def test_hung_then_resumed_server_recovers(redis_proc):
    backend = fault_backend(redis_proc, socket_timeout=0.05)
    policy = Policy(failure_threshold=1)
    try:
        backend.acquire("paused", policy)
        redis_proc.pause()
        assert backend.acquire("paused", policy).admitted
        assert backend.health()["degraded"]
        due = backend._outage._next_probe  # when the re-probe interval is up
        assert wait_until(lambda: time.monotonic() >= due, 2)
        assert backend.acquire("paused", policy).admitted  # a failing probe in the background
        redis_proc.resume()
        assert wait_until(
            lambda: (backend.acquire("paused", policy), backend.health())[1]["degraded"] is False
        )
        assert [t.kind for t in fail(backend, "paused", policy)] == ["opened"]
    finally:
        backend.close()


def test_readonly_replica_is_a_backend_error(redis_proc):
    backend = fault_backend(redis_proc, reprobe_interval=60)
    client = redis_py.Redis.from_url(redis_proc.url)
    try:
        backend.acquire("ro", Policy(failure_threshold=1))  # the first acquire stores the epoch
        # A replica of a dead master: writes fail with READONLY, reads work.
        client.replicaof("127.0.0.1", 1)
        ticket = backend.acquire("ro", Policy(failure_threshold=1))
        assert ticket.admitted and type(ticket) is not FallbackTicket  # closed acquire: a read
        assert backend.record(ticket, Policy(failure_threshold=1), False, 1) == []
        health = backend.health()
        assert health["degraded"] and "READONLY" in health["reason"].upper()
    finally:
        client.replicaof("NO", "ONE")
        client.close()
        backend.close()


def test_while_degraded_only_the_reprobe_reaches_redis(redis_proc):
    """A server that answers PING but refuses writes: probes at most every interval, no calls."""
    backend = fault_backend(redis_proc, reprobe_interval=0.25)
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_threshold=1000)
    try:
        fail(backend, "probed", policy)  # both scripts loaded: no NOSCRIPT round trips below
        client.replicaof("127.0.0.1", 1)
        before = command_calls(client)
        start = time.monotonic()
        calls = 0
        while time.monotonic() - start < 1.5:
            backend.record(backend.acquire("probed", policy), policy, False, 1)
            calls += 1
        elapsed = time.monotonic() - start
        after = command_calls(client)
        pings = after.get("ping", 0) - before.get("ping", 0)
        scripts = after.get("evalsha", 0) - before.get("evalsha", 0)
        assert calls > 1000
        # Each probe answers (PING works on a replica), the next record fails again: one
        # round of (probe, acquire, record) per interval at most.
        assert 1 <= pings <= elapsed / 0.25 + 1
        assert scripts <= 2 * (pings + 1)
    finally:
        client.replicaof("NO", "ONE")
        client.close()
        backend.close()


def test_backend_errors_are_logged_once_per_interval(redis_proc, caplog):
    backend = fault_backend(redis_proc, reprobe_interval=0.05, log_interval=60)
    url_with_password = redis_proc.url.replace("redis://", "redis://:topsecret@")
    secret = make_backend(url_with_password, ManualClock(), reprobe_interval=60)
    redis_proc.stop()
    try:
        with caplog.at_level(logging.INFO, logger="resilience"):
            for _ in range(20):
                backend.acquire("logged", Policy())
                time.sleep(0.01)
            secret.acquire("logged", Policy())
        records = [r for r in caplog.records if r.name == "resilience"]
        assert len([r for r in records if "127.0.0.1" in r.getMessage()]) == 2
        assert not any("topsecret" in r.getMessage() for r in records)
    finally:
        backend.close()
        secret.close()
