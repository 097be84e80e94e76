"""The bulkhead on Redis: one cap for every process, and what happens while Redis is down."""

import subprocess
import sys
import threading
import time

import pytest
from django.test import override_settings

from resilience.backends.redis import RedisBackend
from resilience.clock import ManualClock
from resilience.engine import BULKHEAD_FULL, Policy
from tests.support.waiting import wait_until

CAPPED = Policy(max_concurrent_calls=2, failure_threshold=5)

# A separate process holding one slot of "shared" until killed (it never gives it back).
HOLDER = """
import sys, time
from resilience.backends.redis import RedisBackend
from resilience.engine import Policy
backend = RedisBackend(url=sys.argv[1], prefix=sys.argv[2], socket_timeout=5.0)
ticket = backend.acquire("shared", Policy(max_concurrent_calls=2, failure_threshold=5))
print("admitted" if ticket.slot else "refused", flush=True)
time.sleep(60)
"""


@pytest.fixture
def prefix():
    return f"bh{time.monotonic_ns()}"


def test_the_cap_is_shared_with_another_process(redis_proc, prefix):
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", HOLDER, redis_proc.url, prefix],
        stdout=subprocess.PIPE,
        text=True,
    )
    backend = RedisBackend(url=redis_proc.url, prefix=prefix, socket_timeout=5.0)
    try:
        assert holder.stdout.readline().strip() == "admitted"
        mine = backend.acquire("shared", CAPPED)
        assert mine.admitted and mine.slot
        refused = backend.acquire("shared", CAPPED)
        assert (refused.admitted, refused.state) == (False, BULKHEAD_FULL)
        assert backend.snapshot("shared", CAPPED)["in_flight"] == 2
        backend.return_slot(mine, CAPPED)
        assert backend.acquire("shared", CAPPED).admitted  # the other process still holds one
        assert not backend.acquire("shared", CAPPED).admitted
    finally:
        holder.kill()
        holder.wait(10)
        backend.close()


@pytest.mark.parametrize(
    ("on_error", "second"),
    [("local", BULKHEAD_FULL), ("allow", "closed"), ("deny", "open")],
)
def test_redis_down_applies_on_backend_error_with_a_local_cap(redis_proc, prefix, on_error, second):
    clock = ManualClock()
    with override_settings(RESILIENCE={"ON_BACKEND_ERROR": on_error}):
        backend = RedisBackend(clock=clock, url=redis_proc.url, prefix=prefix, socket_timeout=0.2)
        try:
            held = [backend.acquire("down", CAPPED) for _ in range(2)]
            assert all(t.slot for t in held)
            redis_proc.stop()
            first = backend.acquire("down", CAPPED)  # one socket timeout, then degraded
            assert backend.health()["degraded"] is True
            if on_error == "deny":
                assert (first.admitted, first.state) == (False, "open")
                return
            # The slots taken in Redis are not known here: the local cap counts local calls.
            assert first.admitted
            others = [backend.acquire("down", CAPPED) for _ in range(2)]
            assert others[-1].admitted is (on_error == "allow")
            assert (others[-1].state if not others[-1].admitted else "closed") == second
            for ticket in [first, *others]:
                if ticket.admitted:
                    backend.return_slot(ticket, CAPPED)  # back to the local state: no Redis
            if on_error == "local":
                assert backend.acquire("down", CAPPED).admitted
        finally:
            backend.close()


def test_a_call_ending_after_its_backend_was_closed_still_gives_its_slot_back(redis_proc, prefix):
    # A RESILIENCE settings change closes the backend and builds a new one on the same Redis
    # while calls run: the old backend's give-back used to wait for a thread that close() had
    # stopped, so the slot stayed taken until its lease ran out (2 x the deadline).
    old = RedisBackend(url=redis_proc.url, prefix=prefix, socket_timeout=5.0)
    new = RedisBackend(url=redis_proc.url, prefix=prefix, socket_timeout=5.0)
    policy = Policy(max_concurrent_calls=1, slow_call_ms=30_000)
    try:
        running = old.acquire("swap", policy)
        assert running.slot
        old.close()
        assert new.snapshot("swap", policy)["in_flight"] == 1
        old.return_slot(running, policy)  # the call ends
        assert wait_until(lambda: new.snapshot("swap", policy)["in_flight"] == 0, 2)
        assert new.acquire("swap", policy).admitted
    finally:
        new.close()


def test_a_slot_given_back_during_an_outage_is_back_once_redis_is(redis_proc, prefix):
    # A call admitted by Redis that ends while Redis is unreachable cannot give its slot back
    # then; it must do so once Redis answers again, not hold its place until its lease ends
    # (2 x the deadline: a minute here), refusing every call of a cap-1 circuit meanwhile.
    policy = Policy(max_concurrent_calls=1, slow_call_ms=30_000)
    backend = RedisBackend(
        clock=ManualClock(), url=redis_proc.url, prefix=prefix, socket_timeout=0.2
    )
    try:
        running = backend.acquire("blip", policy)
        assert running.slot
        redis_proc.pause()
        backend.acquire("blip", policy)  # one socket timeout: degraded
        assert backend.health()["degraded"] is True
        backend.return_slot(running, policy)  # the Redis call ends during the outage
        redis_proc.resume()
        assert backend.probe()
        backend.flush()
        assert backend.acquire("blip", policy).admitted
    finally:
        redis_proc.resume()
        backend.close()


def test_a_flush_waits_for_a_give_back_already_on_its_way(redis_url, prefix):
    """A call that ends just before its process exits: the background thread had taken the
    slot and was sending it when the exit's flush ran; the flush found nothing waiting and
    returned, the process exited mid-send and the slot stayed taken for the other processes
    until its lease ran out (seen in CI: tests/isolation/test_hang_across_processes.py)."""
    backend = RedisBackend(url=redis_url, prefix=prefix, socket_timeout=5.0)
    other = RedisBackend(url=redis_url, prefix=prefix, socket_timeout=5.0)  # another process
    on_its_way, land = threading.Event(), threading.Event()
    send = backend._send_returns

    def slow_send(waiting):
        on_its_way.set()
        land.wait(10)
        send(waiting)

    backend._returns._send = lambda: slow_send
    try:
        backend.return_slot(backend.acquire("exiting", CAPPED), CAPPED)
        assert on_its_way.wait(5), "the background thread never sent the slot"
        flush = threading.Thread(target=backend.flush)
        flush.start()
        flush.join(0.3)
        assert flush.is_alive(), "the flush returned while the slot was still on its way"
        land.set()
        flush.join(5)
        assert other.snapshot("exiting", CAPPED)["in_flight"] == 0
    finally:
        land.set()
        backend.close()
        other.close()
