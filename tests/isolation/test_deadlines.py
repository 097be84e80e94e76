"""Deadlines: calls judged while still running (slow_call_ms, call_timeout_ms), coroutines
cancelled at call_timeout_ms, and outer asyncio timeouts."""

import asyncio
import threading
import time

import pytest

from resilience import breaker, circuit_breaker, events, stats
from resilience.models import CircuitEvent
from resilience.watchdog import watchdog
from tests.factories import BreakerPolicyFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def stored(circuit):
    assert events.flush(timeout=10)
    return list(CircuitEvent.objects.filter(circuit=circuit).values_list("kind", "error"))


class Hung:
    """A protected call of ``name`` that runs in a thread until ``finish()``."""

    def __init__(self, name, result="late"):
        self.inside = threading.Event()
        self.go = threading.Event()
        self.outcome = []

        @circuit_breaker(name)
        def call():
            self.inside.set()
            assert self.go.wait(20)
            return result

        self.thread = threading.Thread(target=lambda: self.outcome.append(call()))
        self.thread.start()
        assert self.inside.wait(10)

    def finish(self):
        self.go.set()
        self.thread.join(10)
        return self.outcome


@pytest.mark.usefixtures("memory_backend")
@pytest.mark.parametrize("field", ["slow_call_ms", "call_timeout_ms"])
def test_a_hung_call_opens_the_circuit_at_its_deadline_while_still_running(clock, field):
    name = f"hang-{field}"
    BreakerPolicyFactory(name=name, failure_threshold=1, recovery_timeout=60, **{field: 1000})
    hung = Hung(name)
    clock.advance(0.999)
    watchdog.check()
    assert breaker(name).state == "closed"
    clock.advance(0.001)
    watchdog.check()  # (or the watchdog's own thread, which also reads this clock)
    assert breaker(name).state == "open"  # the call is still running
    assert hung.thread.is_alive()
    limit = "call_timeout_ms" if field == "call_timeout_ms" else "slow"
    assert stored(name) == [
        ("opened", f"TimeoutError: still running after 1000 ms ({limit})"),
    ]
    # Its late success is ignored: it neither closes nor re-opens anything.
    assert hung.finish() == ["late"]  # the caller still gets its result
    snap = breaker(name).snapshot()
    assert (snap["state"], snap["trips"], snap["in_flight"]) == ("open", 1, 0)
    assert [kind for kind, _ in stored(name)] == ["opened"]
    counts = stats.snapshot()[name]
    assert (counts["failure"], counts["overdue"], counts["success"]) == (1, 1, 0)


@pytest.mark.usefixtures("memory_backend")
def test_a_call_that_ends_before_its_deadline_is_not_judged(clock):
    BreakerPolicyFactory(name="quick", failure_threshold=1, slow_call_ms=1000)
    hung = Hung("quick")
    clock.advance(0.5)
    assert hung.finish() == ["late"]
    clock.advance(5)
    assert watchdog.check() == 0
    assert breaker("quick").state == "closed"
    assert stats.snapshot()["quick"]["success"] == 1


@pytest.mark.usefixtures("memory_backend")
def test_a_coroutine_is_cancelled_at_call_timeout_ms_and_that_counts_once():
    BreakerPolicyFactory(name="co", failure_threshold=2, call_timeout_ms=100)
    breaker("co").snapshot()  # the policy is read outside the event loop

    @circuit_breaker("co")
    async def slow():
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(slow())
    assert time.monotonic() - started < 2  # 100 ms and a margin for a loaded machine
    snap = breaker("co").snapshot()
    assert (snap["state"], snap["consecutive_failures"], snap["in_flight"]) == ("closed", 1, 0)


@pytest.mark.usefixtures("memory_backend")
def test_the_callers_own_shorter_timeout_still_wins_for_coroutines():
    BreakerPolicyFactory(name="co2", failure_threshold=5, call_timeout_ms=5000)
    breaker("co2").snapshot()

    @circuit_breaker("co2")
    async def slow():
        await asyncio.sleep(30)

    async def main():
        async with asyncio.timeout(0.05):
            await slow()

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 2
    # An outer timeout is a cancellation, not this circuit's failure.
    assert breaker("co2").snapshot()["consecutive_failures"] == 0


def test_an_outer_timeout_around_a_hang_is_judged_by_slow_call_ms(settings):
    """Real time: the watchdog thread on the system clock judges the hang at 150 ms, while
    the caller's outer asyncio.timeout only cancels it at 600 ms (which is not a failure)."""
    settings.RESILIENCE = {"BACKEND": "resilience.backends.memory.MemoryBackend"}
    BreakerPolicyFactory(name="outer-hang", failure_threshold=1, slow_call_ms=150)
    breaker("outer-hang").snapshot()

    @circuit_breaker("outer-hang")
    async def hang():
        await asyncio.sleep(30)

    async def main():
        async with asyncio.timeout(0.6):
            await hang()

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    snap = breaker("outer-hang").snapshot()
    assert (snap["state"], snap["in_flight"]) == ("open", 0)
    counts = stats.snapshot()["outer-hang"]
    assert (counts["overdue"], counts["failure"], counts["ignored"]) == (1, 1, 0)


@pytest.mark.usefixtures("memory_backend")
def test_the_breakers_own_timeout_counts_even_outside_record():
    from resilience.exceptions import CallTimeoutError

    BreakerPolicyFactory(name="co3", failure_threshold=1, call_timeout_ms=50)
    breaker("co3").snapshot()

    @circuit_breaker("co3", record=(ValueError,), ignore=(TimeoutError,))
    async def slow():
        await asyncio.sleep(30)

    with pytest.raises(CallTimeoutError, match="call_timeout_ms"):
        asyncio.run(slow())
    assert breaker("co3").state == "open"


def test_a_failing_report_does_not_cost_the_other_calls_their_judgement(clock):
    from resilience.backends.memory import MemoryBackend
    from resilience.engine import Policy
    from resilience.watchdog import Watchdog

    backend = MemoryBackend(clock=clock)
    dog = Watchdog()
    policy = Policy(slow_call_ms=100)
    reported = []

    def broken(watch, elapsed):
        raise RuntimeError("the events layer is down")

    def fine(watch, elapsed):
        reported.append(elapsed)

    for on_overdue in (broken, fine):
        ticket = backend.acquire("guarded", policy)
        dog.watch(backend, policy, ticket, clock.now_ms(), on_overdue)
    clock.advance(0.1)
    dog.check()  # (its own thread, on the same clock, may have judged them first)
    wait_until(lambda: reported, 5)
    assert reported == [100]
    backend.close()
