"""The bulkhead through the public API: BulkheadFullError, fallbacks, monitor mode, stats."""

import asyncio
import threading

import pytest

from resilience import BulkheadFullError, CircuitOpenError, breaker, circuit_breaker, stats
from resilience.exceptions import BulkheadFullError as FromExceptions
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


class Held:
    """Calls of ``name`` that stay inside the protected function until ``release()``."""

    def __init__(self, name, **options):
        self.inside = threading.Semaphore(0)
        self.go = threading.Event()
        self.threads = []

        @circuit_breaker(name, **options)
        def call():
            self.inside.release()
            assert self.go.wait(10)
            return "done"

        self.call = call

    def start(self, count):
        for _ in range(count):
            thread = threading.Thread(target=self.call)
            thread.start()
            self.threads.append(thread)
        for _ in range(count):
            assert self.inside.acquire(timeout=10)

    def release(self):
        self.go.set()
        for thread in self.threads:
            thread.join(10)


def test_a_call_over_the_cap_is_refused_at_once():
    BreakerPolicyFactory(name="bh", max_concurrent_calls=2)
    held = Held("bh")
    held.start(2)
    try:
        with pytest.raises(BulkheadFullError) as info:
            held.call()
        error = info.value
        assert isinstance(error, CircuitOpenError) and FromExceptions is BulkheadFullError
        assert (error.circuit, error.state, error.retry_after) == ("bh", "bulkhead_full", 1.0)
        snap = breaker("bh").snapshot()
        assert (snap["state"], snap["in_flight"], snap["max_concurrent_calls"]) == (
            "closed",
            2,
            2,
        )
    finally:
        held.release()
    assert breaker("bh").snapshot()["in_flight"] == 0
    counts = stats.snapshot()["bh"]
    assert (counts["bulkhead_rejected"], counts["rejected"], counts["success"]) == (1, 0, 2)


def test_a_fallback_gets_the_bulkhead_refusal():
    BreakerPolicyFactory(name="bh-fb", max_concurrent_calls=1)
    seen = []
    held = Held("bh-fb", fallback=lambda exc: seen.append(exc) or "cached")
    held.start(1)
    try:
        assert held.call() == "cached"
    finally:
        held.release()
    assert isinstance(seen[0], BulkheadFullError)


def test_the_refusal_is_not_a_failure_and_the_slot_comes_back_after_an_error():
    BreakerPolicyFactory(name="bh-err", max_concurrent_calls=1, failure_threshold=1)

    @circuit_breaker("bh-err", ignore=(KeyError,))
    def ignored():
        raise KeyError("not the upstream's fault")

    for _ in range(3):  # an ignored error gives its slot back too
        with pytest.raises(KeyError):
            ignored()
    assert breaker("bh-err").snapshot()["in_flight"] == 0
    assert breaker("bh-err").state == "closed"


def test_monitor_mode_counts_would_be_refusals_without_refusing():
    BreakerPolicyFactory(name="bh-mon", max_concurrent_calls=1, mode="monitor")
    held = Held("bh-mon")
    held.start(2)  # the second is over the cap, and runs
    try:
        assert breaker("bh-mon").snapshot()["in_flight"] == 2
    finally:
        held.release()
    counts = stats.snapshot()["bh-mon"]
    assert (counts["over_cap"], counts["bulkhead_rejected"], counts["success"]) == (1, 0, 2)


def test_async_calls_share_the_cap():
    BreakerPolicyFactory(name="bh-async", max_concurrent_calls=1)
    breaker("bh-async").snapshot()  # the policy is read outside the event loop

    @circuit_breaker("bh-async")
    async def call(go):
        await go.wait()
        return 1

    async def main():
        go = asyncio.Event()
        first = asyncio.ensure_future(call(go))
        await asyncio.sleep(0)
        with pytest.raises(BulkheadFullError):
            await call(go)
        go.set()
        assert await first == 1
        assert await call(go) == 1

    asyncio.run(main())


def test_the_with_form_holds_a_slot_for_the_block():
    BreakerPolicyFactory(name="bh-with", max_concurrent_calls=1)
    with breaker("bh-with"):
        assert breaker("bh-with").snapshot()["in_flight"] == 1
        with pytest.raises(BulkheadFullError), breaker("bh-with"):
            pass
    assert breaker("bh-with").snapshot()["in_flight"] == 0
