"""Generators and async generators: judged as a whole stream, admitted when called (issue 12,
defect 6)."""

import asyncio

import pytest

from resilience import CircuitOpenError, breaker, circuit_breaker
from tests.decorators.helpers import Boom, half_open, trip, use_policies
from tests.factories import BreakerPolicyFactory

# Transactional: events are stored by a background thread with its own connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


def test_generators_succeed_when_exhausted_and_fail_mid_stream():
    BreakerPolicyFactory(name="gen", failure_threshold=1)

    @circuit_breaker("gen")
    def rows(fail_at=None):
        for i in range(3):
            if i == fail_at:
                raise Boom()
            yield i

    assert list(rows()) == [0, 1, 2]
    stream = rows()
    next(stream)
    stream.close()  # consumer stopped early: neither success nor failure
    assert breaker("gen").state == "closed"
    with pytest.raises(Boom):
        list(rows(fail_at=2))
    assert breaker("gen").state == "open"
    with pytest.raises(CircuitOpenError):
        next(rows())


async def test_async_generators(settings):
    use_policies(settings, agen={"failure_threshold": 1})

    @circuit_breaker("agen")
    async def chunks(fail=False):
        yield 1
        if fail:
            raise Boom()
        yield 2

    assert [c async for c in chunks()] == [1, 2]
    with pytest.raises(Boom):
        _ = [c async for c in chunks(fail=True)]
    assert breaker("agen").state == "open"


async def test_async_generator_cleanup_runs_when_the_consumer_stops_early(settings):
    use_policies(settings, cleanup={"failure_threshold": 1})
    cleaned = []

    @circuit_breaker("cleanup")
    async def rows():
        try:
            for i in range(10):
                yield i
        finally:
            cleaned.append("closed")

    stream = rows()
    assert await stream.__anext__() == 0
    await stream.aclose()
    assert cleaned == ["closed"]
    assert breaker("cleanup").snapshot()["consecutive_failures"] == 0


# --- streams: admitted when the generator function is called (issue 12, defect 6) -------------


def test_a_refused_generator_fails_when_called_before_any_item():
    """A streaming response must be able to turn a refusal into a 503: it has to come before
    the first item, when the generator function is called."""
    BreakerPolicyFactory(name="gen-open", failure_threshold=1)
    trip("gen-open", 1)

    @circuit_breaker("gen-open")
    def rows():
        yield 1

    with pytest.raises(CircuitOpenError):
        rows()


async def test_a_refused_async_generator_fails_when_called_before_any_item(settings):
    use_policies(settings, **{"agen-open": {"failure_threshold": 1}})
    trip("agen-open", 1)

    @circuit_breaker("agen-open")
    async def chunks():
        yield 1

    with pytest.raises(CircuitOpenError):
        chunks()


def test_a_generator_fallback_is_returned_when_called():
    BreakerPolicyFactory(name="gen-fb", failure_threshold=1)
    trip("gen-fb", 1)
    seen = []

    def cached(exc, day):
        seen.append((type(exc).__name__, day))
        return ["cached", day]

    @circuit_breaker("gen-fb", fallback=cached)
    def rows(day):
        yield "fresh"

    stream = rows("monday")
    assert seen == [("CircuitOpenError", "monday")]  # called at once, not at the first item
    assert next(stream) == "cached"  # an iterator, as the generator would have been
    assert list(stream) == ["monday"]


async def test_an_async_generator_fallback_is_returned_when_called(settings):
    use_policies(settings, **{"agen-fb": {"failure_threshold": 1}})
    trip("agen-fb", 1)

    async def cached_async(exc):
        yield "cached"

    @circuit_breaker("agen-fb", fallback=lambda exc: ["cached"])
    async def chunks():
        yield "fresh"

    @circuit_breaker("agen-fb", fallback=cached_async)
    async def chunks_async():
        yield "fresh"

    assert [c async for c in chunks()] == ["cached"]  # a sync fallback, iterated async
    assert [c async for c in chunks_async()] == ["cached"]


def test_a_generator_holds_its_permit_from_call_to_close_or_collection(clock):
    """Admitted at the call, a stream holds its half-open trial permit until it ends; closed or
    garbage-collected before (or without) its first item, it gives the permit back."""
    import gc

    half_open("lazy", clock)

    @circuit_breaker("lazy")
    def rows():
        yield 1

    stream = rows()
    assert breaker("lazy").snapshot()["half_open_permits"] == 1  # taken when called
    with pytest.raises(CircuitOpenError):
        rows()  # the only trial is out
    stream.close()  # never iterated
    assert breaker("lazy").snapshot()["half_open_permits"] == 0
    dropped = rows()
    assert breaker("lazy").snapshot()["half_open_permits"] == 1
    del dropped
    gc.collect()
    snap = breaker("lazy").snapshot()
    assert (snap["state"], snap["half_open_permits"]) == ("half_open", 0)  # not a failure
    assert list(rows()) == [1]
    assert breaker("lazy").state == "closed"


async def test_an_async_generator_holds_its_permit_from_call_to_close_or_collection(
    clock, settings
):
    import gc

    use_policies(settings, alazy={"failure_threshold": 1, "recovery_timeout": 5})
    trip("alazy", 1)
    clock.advance(5)

    @circuit_breaker("alazy")
    async def chunks():
        yield 1

    stream = chunks()
    assert breaker("alazy").snapshot()["half_open_permits"] == 1
    with pytest.raises(CircuitOpenError):
        chunks()
    await stream.aclose()  # never iterated
    assert breaker("alazy").snapshot()["half_open_permits"] == 0
    dropped = chunks()
    del dropped
    gc.collect()
    for _ in range(10):  # the loop closes a dropped async generator in a task of its own
        if breaker("alazy").snapshot()["half_open_permits"] == 0:
            break
        await asyncio.sleep(0)
    snap = breaker("alazy").snapshot()
    assert (snap["state"], snap["half_open_permits"]) == ("half_open", 0)
    assert [c async for c in chunks()] == [1]
    assert breaker("alazy").state == "closed"


async def test_a_cancelled_async_stream_releases_its_permit(clock, settings):
    use_policies(settings, acancel={"failure_threshold": 1, "recovery_timeout": 5})
    trip("acancel", 1)
    clock.advance(5)
    started = asyncio.Event()

    @circuit_breaker("acancel")
    async def chunks():
        started.set()
        await asyncio.sleep(10)
        yield 1

    async def consume():
        return [c async for c in chunks()]

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = breaker("acancel").snapshot()
    assert (snap["state"], snap["half_open_permits"]) == ("half_open", 0)


def test_nested_breakers_on_a_generator_each_judge_the_whole_stream():
    BreakerPolicyFactory(name="outer-gen", failure_threshold=1)
    BreakerPolicyFactory(name="inner-gen", failure_threshold=1)

    @circuit_breaker("outer-gen")
    @circuit_breaker("inner-gen")
    def rows(fail):
        yield 1
        if fail:
            raise Boom()

    stream = rows(True)
    assert next(stream) == 1
    assert breaker("outer-gen").state == "closed"  # not judged when the stream was returned
    with pytest.raises(Boom):
        next(stream)
    assert (breaker("inner-gen").state, breaker("outer-gen").state) == ("open", "open")


def test_a_generator_keeps_send_throw_and_its_return_value():
    BreakerPolicyFactory(name="coro-gen")

    @circuit_breaker("coro-gen")
    def echo():
        total = 0
        while (value := (yield total)) is not None:
            total += value
        return total

    stream = echo()
    assert next(stream) == 0
    assert stream.send(2) == 2
    assert stream.send(3) == 5
    with pytest.raises(StopIteration) as info:
        stream.send(None)
    assert info.value.value == 5
    assert breaker("coro-gen").snapshot()["consecutive_failures"] == 0
