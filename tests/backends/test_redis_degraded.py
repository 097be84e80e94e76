"""RedisBackend failing under concurrent use, and what the local fallback starts from."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_py

from resilience.backends.redis_fallback import FallbackTicket
from resilience.clock import ManualClock
from resilience.engine import Policy
from tests.backends.contract import fail
from tests.backends.redis_helpers import make_backend, waiting_for_reply
from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_until


def in_thread(function, *args):
    """Start ``function(*args)``; the returned join() gives its result or raises its error
    (``join.thread``: the thread)."""
    outcome = {}

    def target():
        try:
            outcome["result"] = function(*args)
        except BaseException as exc:  # the assertion is that nothing gets here
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()

    def join():
        thread.join(10)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    join.thread = thread
    return join


# --- a failure in one thread, calls in flight in others -----------------------------------------


def test_a_failed_call_does_not_tear_down_other_threads_calls(redis_proc):
    """One thread's script error starts an outage; a call still waiting for its reply gets it."""
    proxy = FaultProxy(redis_proc.host, redis_proc.port).start()
    backend = make_backend(proxy.url(), ManualClock(), socket_timeout=5.0, reprobe_interval=60)
    admin = redis_py.Redis.from_url(redis_proc.url)
    policy = Policy()
    try:
        backend.acquire("healthy", policy)  # the script is loaded
        pool = backend.client.connection_pool
        ready = [pool.get_connection(), pool.get_connection()]
        for connection in ready:  # two connected sockets, one for each thread below
            pool.release(connection)
        admin.set(backend._keys("broken")[0], "not a hash")  # its script fails: WRONGTYPE
        proxy.latency(0.4)  # each way: a reply comes 0.8 s after its request
        broken = in_thread(backend.acquire, "broken", policy)
        time.sleep(0.2)
        healthy = in_thread(backend.acquire, "healthy", policy)
        # At 0.8 s the first reply (an error) starts the outage; the second arrives at 1.0 s.
        assert isinstance(broken(), FallbackTicket)
        ticket = healthy()
        assert ticket.admitted and type(ticket) is not FallbackTicket  # read from Redis
        health = backend.health()
        assert health["degraded"] and "WRONGTYPE" in health["reason"]
    finally:
        backend.close()
        admin.close()
        proxy.stop()


def test_the_pool_closed_under_an_in_flight_call_does_not_reach_the_caller(redis_proc):
    """``close()`` (a settings change rebuilding the backend) while a call waits on Redis.

    redis-py then fails the call with ``ValueError('I/O operation on closed file.')``: not one of
    its documented errors, and still the caller's concern none the less.
    """
    backend = make_backend(redis_proc.url, ManualClock(), socket_timeout=5.0, reprobe_interval=60)
    policy = Policy()
    backend.acquire("in-flight", policy)
    redis_proc.pause()
    try:
        waiting = in_thread(backend.acquire, "in-flight", policy)
        assert wait_until(lambda: waiting_for_reply(waiting.thread))
        backend.close()
        ticket = waiting()
        assert ticket.admitted and isinstance(ticket, FallbackTicket)
        assert backend.health()["degraded"]
    finally:
        redis_proc.resume()
        backend.close()


# --- ON_BACKEND_ERROR = "local": what the outage starts from ------------------------------------


@pytest.fixture
def outage(redis_proc, settings):
    settings.RESILIENCE = {"ON_BACKEND_ERROR": "local", "POLICY_REFRESH_SECONDS": 1.0}
    clock = ManualClock()
    backend = make_backend(redis_proc.url, clock, socket_timeout=0.5, reprobe_interval=60)
    yield backend, clock, redis_proc
    backend.close()


@pytest.mark.parametrize("noticed_by", ["the open circuit", "another circuit"])
def test_circuits_known_open_start_the_outage_open(outage, noticed_by):
    backend, clock, server = outage
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    [opened] = fail(backend, "dead-upstream", policy)
    clock.advance(0.5)
    assert not backend.acquire("dead-upstream", policy).admitted  # remembered: 59.5 s to go
    assert backend.acquire("fine-upstream", policy).admitted
    server.stop()
    if noticed_by == "another circuit":
        assert isinstance(backend.acquire("other", policy), FallbackTicket)
    else:
        clock.advance(1.5)  # the remembered rejection no longer answers: Redis is asked
    elapsed_ms = clock.now_ms() - opened.at_ms
    ticket = backend.acquire("dead-upstream", policy)
    assert isinstance(ticket, FallbackTicket) and backend.health()["degraded"]
    assert (ticket.admitted, ticket.state, ticket.retry_after_ms) == (
        False,
        "open",
        60_000 - elapsed_ms,
    )
    assert backend.acquire("fine-upstream", policy).admitted  # unknown or closed: closed
    snap = backend.snapshot("dead-upstream", policy)
    assert (snap["state"], snap["trips"]) == ("open", 1)

    # At the trial time Redis was known to have, the local state lets one trial through.
    clock.advance((60_000 - elapsed_ms) / 1000 - 0.001)
    assert not backend.acquire("dead-upstream", policy).admitted
    clock.advance(0.001)
    trial = backend.acquire("dead-upstream", policy)
    assert trial.admitted and [t.kind for t in trial.transitions] == ["half_opened"]
    assert [t.kind for t in backend.record(trial, policy, False, 1)] == ["opened"]
    assert not backend.acquire("dead-upstream", policy).admitted


def test_a_circuit_seen_closed_again_starts_the_outage_closed(outage):
    backend, clock, server = outage
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    fail(backend, "recovered", policy)
    assert not backend.acquire("recovered", policy).admitted
    elsewhere = make_backend(server.url, clock, prefix=backend.prefix)
    elsewhere.reset("recovered", policy)  # another process resets it
    elsewhere.close()
    clock.advance(1)
    assert backend.acquire("recovered", policy).admitted  # Redis says closed now
    server.stop()
    ticket = backend.acquire("recovered", policy)
    assert isinstance(ticket, FallbackTicket) and ticket.admitted


def test_a_circuit_whose_trial_time_passed_starts_the_outage_closed(outage):
    backend, clock, server = outage
    policy = Policy(failure_threshold=1, recovery_timeout=5)
    fail(backend, "due", policy)
    assert not backend.acquire("due", policy).admitted
    clock.advance(5)
    server.stop()
    ticket = backend.acquire("due", policy)
    assert isinstance(ticket, FallbackTicket) and ticket.admitted
