"""The public API: circuit_breaker / breaker on every kind of callable, against a real backend."""

import asyncio

import pytest

from resilience import CircuitOpenError, breaker, circuit_breaker, events
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory

# Transactional: events are stored by a background thread with its own connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


def stored_kinds(circuit):
    assert events.flush(timeout=10)
    return sorted(CircuitEvent.objects.filter(circuit=circuit).values_list("kind", flat=True))


class Boom(Exception):
    pass


def failing(name, **options):
    @circuit_breaker(name, **options)
    def call():
        raise Boom("upstream down")

    return call


def trip(name, times=5):
    call = failing(name)
    for _ in range(times):
        with pytest.raises(Boom):
            call()


def test_success_passes_through_and_failures_open_the_circuit():
    BreakerPolicyFactory(name="pay", failure_threshold=3, recovery_timeout=30)

    @circuit_breaker("pay")
    def ok(x):
        return x * 2

    assert ok(21) == 42
    trip("pay", 3)
    assert breaker("pay").state == "open"
    with pytest.raises(CircuitOpenError) as info:
        ok(1)
    assert info.value.circuit == "pay"
    assert 29 <= info.value.retry_after <= 30


def test_recovery_via_half_open_trial(clock):
    BreakerPolicyFactory(name="rec", failure_threshold=2, recovery_timeout=10)
    trip("rec", 2)
    clock.advance(10)

    @circuit_breaker("rec")
    def ok():
        return "fine"

    assert ok() == "fine"
    assert breaker("rec").state == "closed"
    assert stored_kinds("rec") == ["closed", "half_opened", "opened"]


def test_fallback_on_rejection_and_on_counted_failure():
    BreakerPolicyFactory(name="fb", failure_threshold=1)
    calls = []

    @circuit_breaker(
        "fb", fallback=lambda exc, *a, **k: calls.append(type(exc).__name__) or "cached"
    )
    def fetch():
        raise Boom()

    assert fetch() == "cached"  # the failure itself, which also trips the circuit
    assert fetch() == "cached"  # rejected without calling the upstream
    assert calls == ["Boom", "CircuitOpenError"]


def test_ignore_and_record_rules():
    BreakerPolicyFactory(name="rules", failure_threshold=1)

    @circuit_breaker("rules", ignore=(KeyError,))
    def ignored():
        raise KeyError("not the upstream's fault")

    for _ in range(3):
        with pytest.raises(KeyError):
            ignored()
    assert breaker("rules").state == "closed"

    @circuit_breaker("rules", record=(TimeoutError,))
    def unrecorded():
        raise ValueError()

    with pytest.raises(ValueError):
        unrecorded()
    assert breaker("rules").state == "closed"

    @circuit_breaker("rules", record=(TimeoutError,))
    def recorded():
        raise TimeoutError()

    with pytest.raises(TimeoutError):
        recorded()
    assert breaker("rules").state == "open"


def test_policy_exception_rules_from_the_database():
    BreakerPolicyFactory(name="dbrules", failure_threshold=1, ignore_exceptions="builtins.KeyError")

    @circuit_breaker("dbrules")
    def ignored():
        raise KeyError()

    with pytest.raises(KeyError):
        ignored()
    assert breaker("dbrules").state == "closed"


def test_is_failure_counts_returned_values():
    BreakerPolicyFactory(name="status", failure_threshold=2)

    @circuit_breaker("status", is_failure=lambda response: response >= 500)
    def get(status):
        return status

    assert get(503) == 503
    assert get(200) == 200
    assert get(503) == 503
    assert breaker("status").state == "closed"  # the 200 broke the streak
    get(503)
    assert breaker("status").state == "open"


def test_inner_circuit_open_error_is_not_an_outer_failure():
    BreakerPolicyFactory(name="inner", failure_threshold=1)
    BreakerPolicyFactory(name="outer", failure_threshold=1)
    trip("inner", 1)

    @circuit_breaker("outer")
    def outer():
        with breaker("inner"):
            return "unreachable"

    with pytest.raises(CircuitOpenError):
        outer()
    assert breaker("outer").state == "closed"


def test_keyboard_interrupt_releases_the_half_open_permit(clock):
    BreakerPolicyFactory(name="ki", failure_threshold=1, recovery_timeout=5)
    trip("ki", 1)
    clock.advance(5)

    @circuit_breaker("ki")
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    snap = breaker("ki").snapshot()
    assert snap["state"] == "half_open"
    assert snap["half_open_permits"] == 0  # the permit came back: the next call is a trial
    with breaker("ki"):
        pass
    assert breaker("ki").state == "closed"


def use_policies(settings, **policies):
    """Policies from settings: async tests cannot touch the ORM from the event loop."""
    settings.RESILIENCE = {**settings.RESILIENCE, "POLICIES": policies}


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


def test_methods():
    class Client:
        def __init__(self):
            self.calls = 0

        @circuit_breaker("method")
        def get(self):
            self.calls += 1
            return self.calls

    client = Client()
    assert client.get() == 1
    assert client.get() == 2


def test_modes_forced_open_disabled_monitor():
    policy = BreakerPolicyFactory(name="modes", failure_threshold=1)
    calls = []

    @circuit_breaker("modes")
    def call():
        calls.append(1)
        raise Boom()

    breaker("modes").force_open(reason="maintenance")
    with pytest.raises(CircuitOpenError) as info:
        call()
    assert info.value.state == "forced_open"
    assert calls == []
    assert breaker("modes").state == "forced_open"
    breaker("modes").release()
    policy.refresh_from_db()
    assert policy.mode == "enforced"
    assert stored_kinds("modes") == ["forced_open", "released"]

    BreakerPolicy.objects.filter(name="modes").update(mode="disabled")
    registry.refresh()  # what the background thread, woken by the update, does
    for _ in range(3):
        with pytest.raises(Boom):
            call()
    assert breaker("modes").state == "disabled"

    BreakerPolicy.objects.filter(name="modes").update(mode="monitor")
    registry.refresh()  # what the background thread, woken by the update, does
    for _ in range(3):  # counted and transitioned, but never rejected
        with pytest.raises(Boom):
            call()
    assert len(calls) == 6
    assert breaker("modes").snapshot()["state"] == "open"


def test_enabled_false_passes_everything_through(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "ENABLED": False}
    trip("off", 10)
    settings.RESILIENCE = {**settings.RESILIENCE, "ENABLED": True}
    assert breaker("off").snapshot()["consecutive_failures"] == 0


def test_reset_closes_and_records_event():
    BreakerPolicyFactory(name="rst", failure_threshold=1)
    trip("rst", 1)
    breaker("rst").reset(reason="fixed upstream")
    assert breaker("rst").state == "closed"
    event = CircuitEvent.objects.get(circuit="rst", kind="reset")
    assert event.reason == "fixed upstream"
    assert event.from_state == "open"


def test_policy_edit_applies_without_losing_state():
    policy = BreakerPolicyFactory(name="edit", failure_threshold=10)
    trip("edit", 4)
    assert breaker("edit").snapshot()["consecutive_failures"] == 4
    policy.failure_threshold = 5
    policy.save()
    trip("edit", 1)
    assert breaker("edit").state == "open"


def test_unknown_circuit_uses_defaults_and_creates_the_row(settings):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "POLICIES": {"brand-new": {"failure_threshold": 2}},
    }
    trip("brand-new", 2)
    assert breaker("brand-new").state == "open"
    registry.refresh()
    assert BreakerPolicy.objects.get(name="brand-new").failure_threshold == 2


def test_no_sql_on_the_call_path(django_assert_num_queries):
    BreakerPolicyFactory(name="hot")

    @circuit_breaker("hot")
    def ok():
        return 1

    ok()  # first use loads the row once
    with django_assert_num_queries(0):
        for _ in range(100):
            ok()


@pytest.mark.parametrize("name", ["", "a b", "x" * 101, "{slot}", "new\nline", "nul\x00"])
def test_hostile_names_are_rejected_clearly(name):
    with pytest.raises(ValueError, match="invalid circuit name"):
        circuit_breaker(name)


def test_retries_inside_the_breaker_are_one_outcome():
    BreakerPolicyFactory(
        name="retry",
        failure_threshold=2,
        retry_attempts=2,
        retry_backoff_ms=0,
        retry_max_backoff_ms=0,
    )
    attempts = []

    @circuit_breaker("retry")
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("reset by peer")
        return "ok"

    assert flaky() == "ok"
    assert len(attempts) == 3
    snap = breaker("retry").snapshot()
    assert snap["consecutive_failures"] == 0
    assert snap["calls_in_window"] == 1

    @circuit_breaker("retry")
    def down():
        attempts.append(1)
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        down()
    assert breaker("retry").snapshot()["consecutive_failures"] == 1  # three attempts, one failure


def test_slow_calls_count_as_failures(clock):
    BreakerPolicyFactory(name="slow", failure_threshold=2, slow_call_ms=500)

    @circuit_breaker("slow")
    def call(seconds):
        clock.advance(seconds)
        return "late but fine"

    assert call(0.4) == "late but fine"
    assert breaker("slow").snapshot()["consecutive_failures"] == 0
    call(0.6)
    assert breaker("slow").snapshot()["consecutive_failures"] == 1
    call(0.6)
    assert breaker("slow").state == "open"


def test_deleted_policy_falls_back_to_the_defaults():
    policy = BreakerPolicyFactory(name="gone", failure_threshold=1)
    assert breaker("gone").snapshot()["consecutive_failures"] == 0
    policy.delete()
    trip("gone", 1)
    assert breaker("gone").state == "closed"  # default threshold 5 now applies
    trip("gone", 4)
    assert breaker("gone").state == "open"


def test_is_failure_judges_returned_values_not_streams_or_blocks():
    BreakerPolicyFactory(name="judge", failure_threshold=1)
    status_check = {"is_failure": lambda response: response.status_code >= 500}

    @circuit_breaker("judge", **status_check)
    def stream():
        yield from range(3)

    for _ in range(3):
        assert list(stream()) == [0, 1, 2]
        with breaker("judge", **status_check):
            pass
    assert breaker("judge").state == "closed"


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


def half_open(name, clock):
    BreakerPolicyFactory(name=name, failure_threshold=1, recovery_timeout=5)
    trip(name, 1)
    clock.advance(5)


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
