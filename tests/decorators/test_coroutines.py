"""circuit_breaker / breaker on coroutines and ``async with``: permits, cancellation, fallbacks."""

import asyncio

import pytest

from resilience import CircuitOpenError, breaker, circuit_breaker
from tests.decorators.helpers import Boom, use_policies

# Transactional: events are stored by a background thread with its own connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


async def test_coroutines_and_cancellation_release_permits(clock, settings):
    use_policies(
        settings, aio={"failure_threshold": 1, "recovery_timeout": 5, "half_open_max_calls": 10}
    )

    @circuit_breaker("aio")
    async def slow():
        await asyncio.sleep(10)

    @circuit_breaker("aio")
    async def fail():
        raise Boom()

    with pytest.raises(Boom):
        await fail()
    clock.advance(5)
    tasks = [asyncio.create_task(slow()) for _ in range(10)]
    await asyncio.sleep(0)
    assert breaker("aio").snapshot()["half_open_permits"] == 10
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    snap = breaker("aio").snapshot()
    assert snap["half_open_permits"] == 0
    assert snap["state"] == "half_open"  # cancellation is not a failure


async def test_async_fallback_and_context_manager():
    @circuit_breaker("aio-fb", fallback=lambda exc, q: [f"cached {q}"])
    async def search(q):
        raise Boom()

    for _ in range(5):
        assert await search("x") == ["cached x"]
    async with breaker("aio-cm"):
        pass
    with pytest.raises(CircuitOpenError):
        await _rejected_search()


async def _rejected_search():
    @circuit_breaker("aio-fb")
    async def search():
        return "never"

    return await search()
