"""Backend failures seen by concurrent callers: what redis-py raises stays inside the backend."""

from __future__ import annotations

import threading
import time

import pytest

from resilience import circuit_breaker
from resilience.backends import get_backend
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db


def test_staggered_timeouts_on_a_hung_server_never_reach_callers(redis_proc, settings):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "socket_timeout": 0.3, "reprobe_interval": 60},
    }

    @circuit_breaker("hung-concurrent")
    def call() -> str:
        return "ok"

    assert call() == "ok"
    redis_proc.pause()
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)

    # The first caller times out while the second is still waiting for its reply.
    first = threading.Thread(target=caller)
    second = threading.Thread(target=caller)
    first.start()
    time.sleep(0.1)
    second.start()
    first.join(5)
    second.join(5)
    assert get_backend().health()["degraded"]
    assert errors == []


def test_a_snapshot_waiting_for_a_background_send_costs_one_timeout(proxy):
    """A snapshot that waits for the background send of deferred successes (so as not to
    count them twice) does not wait for Redis a second time when that send found it gone."""
    from resilience.backends.redis import RedisBackend
    from resilience.engine import Policy

    timeout = 0.6
    backend = RedisBackend(url=proxy.url(), socket_timeout=timeout, reprobe_interval=60)
    policy = Policy()
    try:
        backend.acquire("waits", policy)  # the circuit's first call stores its epoch
        ticket = backend.acquire("waits", policy)
        proxy.blackhole()
        assert backend.record(ticket, policy, True, 0) == []  # queued
        sending = threading.Thread(target=backend.flush)  # as the background thread does
        sending.start()
        wait_until(lambda: backend._deferred._inflight, 5, 0.005)
        started = time.monotonic()
        snap = backend.snapshot("waits", policy)
        took = time.monotonic() - started
        sending.join(5)
        assert snap["state"] == "closed" and backend.health()["degraded"] is True
        assert took < 1.5 * timeout, took  # one timeout (the send's), not two
    finally:
        proxy.heal()
        backend.close()
