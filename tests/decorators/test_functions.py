"""circuit_breaker / breaker on plain functions and methods: outcomes, rules, fallbacks, modes
and policies, against a real backend."""

import pytest

from resilience import CircuitOpenError, breaker, circuit_breaker
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.decorators.helpers import Boom, stored_kinds, trip
from tests.factories import BreakerPolicyFactory

# Transactional: events are stored by a background thread with its own connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


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
