"""Races and forks in the isolation core: a call ended by a failing `is_failure`, a child forked
while the watchdog or the slot give-back holds a lock, a slot on its way back to Redis."""

import os
import signal
import threading
import time

import pytest

from resilience import breaker, circuit_breaker
from resilience.backends.redis import RedisBackend
from resilience.engine import Policy
from resilience.watchdog import watchdog
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("memory_backend")
def test_an_is_failure_raising_a_base_exception_still_ends_the_call():
    """r1 review: is_failure ran before the call's books were closed, so a predicate raising
    SystemExit/KeyboardInterrupt left its slot taken and its watch alive, and the watchdog
    then renewed that slot's lease for as long as the process lived."""
    BreakerPolicyFactory(name="pred-exit", max_concurrent_calls=1, slow_call_ms=1000)

    def interrupted(result):
        raise KeyboardInterrupt

    @circuit_breaker("pred-exit", is_failure=interrupted)
    def call():
        return "ok"

    watched = len(watchdog)
    with pytest.raises(KeyboardInterrupt):
        call()
    assert breaker("pred-exit").snapshot()["in_flight"] == 0
    assert len(watchdog) == watched  # nothing left for the watchdog to renew or judge


def _forked_while_held(lock, child):
    """Fork while another thread holds ``lock`` (as a background thread of this process does
    for a moment, many times a second); the child runs ``child()`` (True: it worked) and exits
    without any cleanup. Returns the child's exit code, or None (killed) if it hung 10 s."""
    taken, done = threading.Event(), threading.Event()

    def hold():
        with lock:
            taken.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if child() else 1)
    done.set()
    holder.join(10)
    deadline = time.monotonic() + 10
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if status[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    return os.waitstatus_to_exitcode(status[1])


@pytest.mark.usefixtures("memory_backend")
def test_a_child_forked_while_the_watchdog_holds_its_lock_can_still_make_calls():
    """r1 review: a process forked while another thread was inside the watchdog's lock (its
    thread judging or renewing, a call starting or ending: gthread workers, a pool forked
    from a request) inherited the lock taken by a thread that does not exist in the child,
    and the child's first tracked call hung for ever."""
    BreakerPolicyFactory(name="forked", slow_call_ms=1000)

    @circuit_breaker("forked")
    def call():
        return "ok"

    assert call() == "ok"  # policy and route loaded before the fork (no database in the child)
    code = _forked_while_held(watchdog._lock, lambda: call() == "ok")
    assert code is not None, "the child's tracked call hung on the watchdog's inherited lock"
    assert code == 0


def test_a_child_forked_while_slots_are_being_given_back_can_still_use_redis(redis_url):
    """r1 review: SlotReturns' locks are held by its background thread for a whole round trip
    (``sending``) and by every call that ends (``_lock``); a child forked meanwhile inherited
    them taken, and its snapshots (admin, health, metrics) and ended calls hung for ever."""
    capped = Policy(max_concurrent_calls=2)
    backend = RedisBackend(url=redis_url, prefix="fork", socket_timeout=5.0)

    def child():  # a call, its end, a snapshot
        ticket = backend.acquire("forked", capped)
        backend.return_slot(ticket, capped)
        return backend.snapshot("forked", capped)["in_flight"] == 0

    try:
        # As the background thread holds it while it sends.
        code = _forked_while_held(backend._returns.sending, child)
        assert code is not None, "the child hung on a lock inherited from the fork"
        assert code == 0
    finally:
        backend.close()


def test_a_slot_being_sent_back_is_never_counted_by_an_acquire_meanwhile(redis_url):
    """r1 review: the background thread emptied the waiting slots before it marked them in
    transit, so an acquire between the two saw neither (its check is lock-free), did not carry
    the slot, and counted it: a false BulkheadFullError. The thread is paused (a trace
    function) at any moment where a slot it has taken is in neither place."""
    from resilience.backends.redis_local import SlotReturns

    capped = Policy(max_concurrent_calls=1)
    backend = RedisBackend(url=redis_url, prefix="transit", socket_timeout=5.0)
    returns = backend._returns
    paused, resume = threading.Event(), threading.Event()
    ticket = backend.acquire("transit", capped)
    assert ticket.slot

    def lost(frame):
        waiting = frame.f_locals.get("waiting") or {}
        return ticket.slot in waiting.get("transit", ()) and not any(
            ticket.slot in where.get("transit", ())
            for where in (returns._by_name, returns._in_transit)
        )

    def local_trace(frame, event, arg):
        if event == "line" and not paused.is_set() and lost(frame):
            paused.set()
            resume.wait(10)
        return local_trace

    def trace(frame, event, arg):
        return local_trace if frame.f_code is SlotReturns._run.__code__ else None

    threading.settrace(trace)  # the background thread starts with the call's end, below
    try:
        backend.return_slot(ticket, capped)
    finally:
        threading.settrace(None)
    try:
        paused.wait(2)  # never, once the slots are in transit before they leave the queue
        again = backend.acquire("transit", capped)
        assert (again.admitted, again.state) == (True, "closed")
    finally:
        resume.set()
        backend.close()
