"""``breaker(name).history()``: from protected calls to the buckets, on the memory backend
(tests/backends/history_contract.py holds the backends' side; test_redis_history.py Redis')."""

import math
import threading

import pytest

from resilience import BulkheadFullError, CircuitOpenError, breaker, circuit_breaker, series, stats
from resilience.backends import get_backend
from resilience.watchdog import watchdog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


class Boom(Exception):
    pass


def use_policies(settings, **policies):
    settings.RESILIENCE = {**settings.RESILIENCE, "POLICIES": policies}


def protected(name, clock, *, takes_ms=0, fails=False, **options):
    @circuit_breaker(name, **options)
    def call():
        clock.advance(takes_ms / 1000)
        if fails:
            raise Boom()
        return "ok"

    return call


def run(call, times):
    for _ in range(times):
        try:
            call()
        except (Boom, CircuitOpenError):
            pass


def newest(name, minutes=1):
    return breaker(name).history(minutes=minutes)[-1]


def test_the_buckets_count_what_the_calls_did(clock):
    run(protected("h-basic", clock), 7)
    run(protected("h-basic", clock, fails=True), 3)
    run(protected("h-basic", clock, ignore=(Boom,), fails=True), 2)  # ignored: not counted
    bucket = newest("h-basic")
    assert (bucket["calls"], bucket["failures"], bucket["rejected"]) == (10, 3, 0)
    assert bucket["seconds"] == 10
    assert bucket["start"].timestamp() * 1000 == clock.now_ms() // 10_000 * 10_000


def test_rejections_by_an_open_circuit_are_rejected_open(clock, settings):
    use_policies(settings, **{"h-open": {"failure_threshold": 2, "recovery_timeout": 60}})
    run(protected("h-open", clock, fails=True), 5)
    bucket = newest("h-open")
    assert (bucket["calls"], bucket["failures"]) == (2, 2)
    assert (bucket["rejected"], bucket["rejected_open"], bucket["rejected_bulkhead"]) == (3, 3, 0)


def test_bulkhead_refusals_are_rejected_bulkhead(clock, settings):
    use_policies(settings, **{"h-cap": {"max_concurrent_calls": 1}})
    inside, go = threading.Event(), threading.Event()

    @circuit_breaker("h-cap")
    def held():
        inside.set()
        assert go.wait(10)

    thread = threading.Thread(target=held)
    thread.start()
    assert inside.wait(10)
    for _ in range(4):
        with pytest.raises(BulkheadFullError):
            held()
    go.set()
    thread.join(10)
    bucket = newest("h-cap")
    assert (bucket["calls"], bucket["rejected"], bucket["rejected_bulkhead"]) == (1, 4, 4)


def test_tracked_calls_are_timed_and_slow_ones_counted(clock, settings):
    use_policies(settings, **{"h-slow": {"slow_call_ms": 100, "failure_threshold": 100}})
    run(protected("h-slow", clock, takes_ms=40), 8)
    run(protected("h-slow", clock, takes_ms=250), 1)
    run(protected("h-slow", clock, takes_ms=250, fails=True), 1)
    bucket = breaker("h-slow").history(minutes=1)
    calls = sum(b["calls"] for b in bucket)
    assert calls == 10
    assert sum(b["slow"] for b in bucket) == 2  # a slow success and a slow failure
    timed = [b for b in bucket if b["calls"]]
    assert len(timed) == 1  # 10 calls of at most 250 ms: one bucket
    assert 30 < timed[0]["p50_ms"] <= 50
    assert 200 < timed[0]["p99_ms"] <= 300
    totals = get_backend().totals(["h-slow"])["h-slow"]
    assert sum(totals["latency"]["counts"]) == 10
    assert totals["latency"]["sum_ms"] == 8 * 40 + 2 * 250


def test_a_call_judged_at_its_deadline_is_a_timeout_and_slow(clock, settings):
    use_policies(settings, **{"h-hung": {"slow_call_ms": 1000, "failure_threshold": 100}})
    inside, go = threading.Event(), threading.Event()

    @circuit_breaker("h-hung")
    def hung():
        inside.set()
        assert go.wait(10)

    thread = threading.Thread(target=hung)
    thread.start()
    assert inside.wait(10)
    clock.advance(1.001)
    watchdog.check()
    go.set()
    thread.join(10)
    bucket = [b for b in breaker("h-hung").history(minutes=1) if b["calls"]]
    assert [(b["calls"], b["failures"], b["timeouts"], b["slow"]) for b in bucket] == [(1, 1, 1, 1)]


def test_untracked_calls_outside_the_lane_are_sampled(clock, settings):
    # is_failure keeps the calls off the memory backend's lock-free lane: through _enter.
    call = protected("h-sampled", clock, takes_ms=20, is_failure=lambda result: False)
    run(call, 64)
    get_backend().flush()
    totals = get_backend().totals(["h-sampled"])["h-sampled"]
    assert totals["calls"] == 64
    assert sum(totals["latency"]["counts"]) == 64 // stats.SAMPLE_EVERY
    assert totals["latency"]["sum_ms"] == 20 * 64 // stats.SAMPLE_EVERY


def test_plain_calls_on_the_lane_are_counted_exactly_but_not_timed(clock):
    run(protected("h-lane", clock, takes_ms=5), 1000)
    assert newest("h-lane")["calls"] == 1000
    # Only the first call, which builds the route through Breaker._enter, was sampled.
    assert get_backend().totals(["h-lane"])["h-lane"]["latency"]["counts"][3] == 1
    assert sum(get_backend().totals(["h-lane"])["h-lane"]["latency"]["counts"]) == 1


def test_each_flush_goes_into_the_bucket_of_its_time(clock):
    call = protected("h-time", clock)
    for _ in range(3):
        run(call, 2)
        get_backend().flush()
        clock.advance(10)
    assert [b["calls"] for b in breaker("h-time").history(minutes=1)][-4:] == [2, 2, 2, 0]


def test_more_than_six_hours_reads_minute_buckets(clock):
    run(protected("h-long", clock), 3)
    get_backend().flush()
    clock.advance(3600)
    buckets = breaker("h-long").history(minutes=361)
    assert {b["seconds"] for b in buckets} == {60}
    assert sum(b["calls"] for b in buckets) == 3
    assert len(buckets) in (361, 362)
    assert len(breaker("h-long").history(minutes=360)) == 360 * 6 + 1


@pytest.mark.parametrize(
    ("minutes", "error"),
    [
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-5, ValueError),
        (0, ValueError),
        (series.MAX_MINUTES + 1, ValueError),
        (10**30, ValueError),
        ("60", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_bad_minutes_are_refused_clearly(minutes, error):
    with pytest.raises(error, match="minutes"):
        breaker("h-bad").history(minutes=minutes)


def test_a_fractional_number_of_minutes_is_fine(clock):
    assert len(breaker("h-frac").history(minutes=0.5)) in (4, 3)


def test_the_memory_backend_drops_what_it_no_longer_keeps(clock):
    call = protected("h-prune", clock)
    for _ in range(7 * 60):  # seven hours, a call a minute
        call()
        get_backend().flush()
        clock.advance(60)
    kept = get_backend()._history._circuits["h-prune"]
    # 10-second buckets: 6 hours and the 20-minute chunk they end in, at most.
    assert 6 * 60 <= len(kept.fine) <= 6 * 60 + 20
    assert len(kept.coarse) == 7 * 60
    assert get_backend().totals(["h-prune"])["h-prune"]["calls"] == 7 * 60


def test_refusals_counted_while_no_backend_is_fed_are_not_lost(clock, settings):
    """A forced-open circuit refuses without asking the backend, so nothing builds it: its
    refusals (a fresh process, or one whose backend a settings change closed) are sent by
    the next backend fed, not swallowed into its starting point."""
    from resilience.testing import force_open

    settings.RESILIENCE = {**settings.RESILIENCE}  # the backend is closed: none is fed now
    with force_open("h-killed"):
        call = protected("h-killed", clock)
        for _ in range(3):
            with pytest.raises(CircuitOpenError):
                call()
    assert newest("h-killed")["rejected_open"] == 3
    assert get_backend().totals(["h-killed"])["h-killed"]["rejected_open"] == 3


def test_a_call_ending_while_the_backend_is_replaced_is_counted_once(clock, settings):
    use_policies(settings, **{"h-swap": {"slow_call_ms": 10_000}})  # tracked: held by a thread
    inside, go = threading.Event(), threading.Event()

    @circuit_breaker("h-swap")
    def held():
        inside.set()
        assert go.wait(10)

    thread = threading.Thread(target=held)
    thread.start()
    assert inside.wait(10)
    settings.RESILIENCE = {**settings.RESILIENCE}  # a settings change: the old backend closed
    go.set()  # the call ends now, counted in this process while no backend is fed
    thread.join(10)
    protected("h-swap", clock)()
    assert newest("h-swap")["calls"] == 2


class _TickingClock:
    """A real clock's one property a ManualClock lacks: every reading is a moment later."""

    def __init__(self, clock):
        self.clock = clock

    def now_ms(self):
        self.clock.advance(0.001)
        return self.clock.now_ms()


def test_a_call_just_before_history_is_in_it_across_a_bucket_boundary(clock, settings):
    """history() sends this process's counts first; they go into the bucket of the moment
    they are sent, so the range read must reach that moment (a boundary may pass)."""
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.memory.MemoryBackend",
        "OPTIONS": {"clock": _TickingClock(clock)},
    }
    call = protected("h-edge", clock)
    call()
    clock.set(fine_end(clock.now_ms()) - 2)  # the range ends 1 ms before a boundary
    assert sum(b["calls"] for b in breaker("h-edge").history(minutes=1)) == 1


def fine_end(ms):
    return ms // series.FINE_MS * series.FINE_MS + series.FINE_MS
