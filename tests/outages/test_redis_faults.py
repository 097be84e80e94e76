"""Redis breaks under load; callers never see it, wait at most one timeout, and state converges.

Each scenario runs 2 processes × 4 threads calling ``@circuit_breaker`` with the Redis backend
through a fault proxy: warm up, inject the fault, heal it, then make the upstream fail so that
the circuit trips in shared state. Guarantees checked (docs/reliability.md):

- no caller ever sees anything but its own result or ``CircuitOpenError``;
- no call takes longer than ``socket_timeout`` plus a scheduling margin;
- ``health()["degraded"]`` is True in every process during the fault and False again within
  ``reprobe_interval`` (+ margin) after it ends;
- after recovery the processes share one state again: the trip is exactly one ``opened``
  transition, after which no caller anywhere is admitted;
- every transition any process was handed is stored as exactly one ``CircuitEvent``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from resilience import circuit_breaker
from tests.outages.scenario import (
    MARGIN,
    RECOVERY,
    SOCKET_TIMEOUT,
    assert_survived,
    run_scenario,
    settings_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_connection_refused(tmp_path, smtp, proxy):
    run = run_scenario(tmp_path, smtp, proxy.url(), proxy.refuse, proxy.heal)
    assert_survived(run, degraded=True)


def test_connections_reset(tmp_path, smtp, proxy):
    run = run_scenario(tmp_path, smtp, proxy.url(), proxy.reset, proxy.heal)
    assert_survived(run, degraded=True)


def test_network_blackhole(tmp_path, smtp, proxy):
    run = run_scenario(tmp_path, smtp, proxy.url(), proxy.blackhole, proxy.heal)
    assert_survived(run, degraded=True)


def test_server_hung_by_sigstop(tmp_path, smtp, proxy, redis_proc):
    run = run_scenario(tmp_path, smtp, proxy.url(), redis_proc.pause, redis_proc.resume)
    assert_survived(run, degraded=True)


def test_server_restarted_empty(tmp_path, smtp, proxy, redis_proc, admin_redis):
    run = run_scenario(tmp_path, smtp, proxy.url(), redis_proc.stop, redis_proc.start)
    assert_survived(run, degraded=True)
    assert admin_redis.dbsize() > 0  # the trip was stored in the new, empty server


def test_slower_than_socket_timeout(tmp_path, smtp, proxy):
    run = run_scenario(
        tmp_path, smtp, proxy.url(), lambda: proxy.latency(2 * SOCKET_TIMEOUT), proxy.heal
    )
    assert_survived(run, degraded=True)


def test_slow_but_within_socket_timeout(tmp_path, smtp, proxy):
    # Each round trip is slower but answered in time: not an outage. A call costs at most three
    # round trips: waiting for its process's background send of deferred successes, acquire,
    # and record (a failure or a trial).
    latency = 0.03  # each way
    bound = 3 * (2 * latency) + MARGIN
    inject = lambda: proxy.latency(latency)  # noqa: E731
    run = run_scenario(tmp_path, smtp, proxy.url(), inject, proxy.heal, stall=bound)
    assert_survived(run, degraded=False, bound=bound)


def test_client_pause(tmp_path, smtp, proxy, admin_redis):
    # CLIENT UNPAUSE would itself wait for the pause to end: the pause simply runs out.
    run = run_scenario(
        tmp_path, smtp, proxy.url(), lambda: admin_redis.client_pause(1100, all=True), lambda: None
    )
    assert_survived(run, degraded=True)


def repeatedly(action: Callable[[], None], every: float = 0.1):
    """(start, stop) callables running ``action`` in a thread every ``every`` seconds."""
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: [action() for _ in iter(lambda: stop.wait(every), True)]
    )
    return thread.start, lambda: (stop.set(), thread.join(5))


def test_script_flush_is_transparent(tmp_path, smtp, proxy, admin_redis):
    start, stop = repeatedly(admin_redis.script_flush)
    run = run_scenario(tmp_path, smtp, proxy.url(), start, stop)
    assert_survived(run, degraded=False)


def test_keys_deleted_and_evicted(tmp_path, smtp, proxy, admin_redis):
    def evict() -> None:
        for key in admin_redis.scan_iter("f*"):
            admin_redis.delete(key)
        # Fill the server past maxmemory with junk: allkeys-lru evicts whatever it likes.
        admin_redis.config_set("maxmemory-policy", "allkeys-lru")
        admin_redis.config_set("maxmemory", admin_redis.info("memory")["used_memory"] + 200_000)
        pipe = admin_redis.pipeline(transaction=False)
        for i in range(400):
            pipe.set(f"junk:{uuid.uuid4().hex}:{i}", "x" * 2000)
        pipe.execute()

    start, stop = repeatedly(evict, every=0.2)

    def heal() -> None:
        stop()
        admin_redis.config_set("maxmemory", 0)

    run = run_scenario(tmp_path, smtp, proxy.url(), start, heal)
    assert_survived(run, degraded=False)
    assert admin_redis.info("stats")["evicted_keys"] > 0


@pytest.mark.urls("tests.support.site_urls")
def test_health_endpoint_reports_the_outage_and_the_recovery(settings, proxy, client):
    settings.RESILIENCE = settings_for(proxy.url())
    call = circuit_breaker("probed")(lambda: "ok")
    assert call() == "ok"
    assert client.get("/resilience/health/").status_code == 200
    proxy.refuse()
    assert call() == "ok"
    response = client.get("/resilience/health/")
    assert response.status_code == 503 and response.json() == {"status": "degraded"}
    proxy.heal()
    healed = time.monotonic()
    while client.get("/resilience/health/").status_code != 200:
        assert time.monotonic() - healed < RECOVERY, "health still degraded"
        assert call() == "ok"  # degraded calls schedule the re-probe
        time.sleep(0.02)


def test_upstream_failing_during_the_outage(tmp_path, smtp, proxy):
    # Each process trips its own local circuit once (ON_BACKEND_ERROR "local"); back on Redis,
    # that local state is dropped and the processes share one circuit again.
    run = run_scenario(tmp_path, smtp, proxy.url(), proxy.refuse, proxy.heal, fail_during=True)
    assert_survived(run, degraded=True)
    for emitted in run.result.emitted:
        during = [t[1] for t in emitted if run.fault * 1000 <= t[2] < run.heal * 1000]
        assert during == ["opened"], during
    assert len(run.smtp.messages) == len(run.result.emitted) + 1
