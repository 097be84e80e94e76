"""resilience.testing: override_policy, force_open/force_closed, and the pytest plugin."""

import pytest
from django.core.exceptions import ValidationError
from django.test import SimpleTestCase

from resilience import CircuitOpenError, breaker, circuit_breaker
from resilience.backends import get_backend
from resilience.policies import registry
from resilience.testing import force_closed, force_open, override_policy
from tests.factories import BreakerPolicyFactory


@circuit_breaker("payments-api")
def charge():
    return "charged"


@circuit_breaker("payments-api")
async def acharge():
    return "charged"


@circuit_breaker("payments-api")
def fail():
    raise ConnectionError("down")


@pytest.mark.django_db(transaction=True)  # events are written by a thread
def test_force_open_rejects_without_touching_the_database(django_assert_num_queries):
    with force_open("payments-api", retry_after=30), django_assert_num_queries(0):
        with pytest.raises(CircuitOpenError) as info:
            charge()
        assert breaker("payments-api").state == "forced_open"
    assert info.value.retry_after == 30


@pytest.mark.django_db(transaction=True)  # events are written by a thread
def test_override_beats_the_row_and_is_undone(django_assert_num_queries):
    BreakerPolicyFactory(name="payments-api", failure_threshold=5, recovery_timeout=60)
    with override_policy("payments-api", failure_threshold=1, recovery_timeout=7) as resolved:
        assert resolved.policy.failure_threshold == 1
        with django_assert_num_queries(0):
            assert registry.get("payments-api").policy.recovery_timeout == 7
    assert registry.get("payments-api").policy.failure_threshold == 5


def test_overrides_nest():
    with override_policy("payments-api", failure_threshold=3):
        with force_open("payments-api"):
            with pytest.raises(CircuitOpenError):
                charge()
        assert registry.get("payments-api").policy.failure_threshold == 3
        assert charge() == "charged"


@force_open("payments-api")
def test_as_a_decorator():
    with pytest.raises(CircuitOpenError):
        charge()


@force_open("payments-api")
async def test_as_a_decorator_on_a_coroutine():
    with pytest.raises(CircuitOpenError):
        await acharge()


@force_open("payments-api")
class UnittestStyleTests(SimpleTestCase):
    def test_open_for_every_test_of_the_class(self):
        with self.assertRaises(CircuitOpenError):
            charge()


def test_bad_fields_and_values_are_reported():
    with pytest.raises(TypeError, match="not a BreakerPolicy field"):
        override_policy("payments-api", failure_treshold=1).enable()
    with pytest.raises(ValidationError):
        override_policy("payments-api", failure_rate_threshold=101).enable()
    with pytest.raises(ValidationError):
        override_policy("not valid!", failure_threshold=1).enable()


def test_force_closed_resets_an_open_circuit_and_never_trips(memory_backend):
    policy = registry.get("payments-api").policy
    for _ in range(policy.failure_threshold):
        memory_backend.record(memory_backend.acquire("payments-api", policy), policy, False, 1)
    assert breaker("payments-api").state == "open"
    memory_backend.ack("payments-api", [t.id for t in memory_backend.outbox("payments-api")])
    with force_closed("payments-api"):
        assert breaker("payments-api").state == "closed"
        for _ in range(50):
            with pytest.raises(ConnectionError):
                fail()
        assert breaker("payments-api").state == "closed"
    assert memory_backend.outbox("payments-api") == []  # the reset is not an event


class TestPytestPlugin:
    @pytest.mark.resilience_open("payments-api", "search", retry_after=12)
    def test_open_marker(self):
        with pytest.raises(CircuitOpenError) as info:
            charge()
        assert info.value.retry_after == 12
        assert breaker("search").state == "forced_open"

    @pytest.mark.resilience_closed("payments-api")
    def test_closed_marker(self, memory_backend):
        for _ in range(20):
            with pytest.raises(ConnectionError):
                fail()
        assert charge() == "charged"

    def test_fixtures(self, resilience_open, resilience_closed, resilience_policy):
        resilience_open("payments-api")
        with pytest.raises(CircuitOpenError):
            charge()
        resilience_policy("search", failure_threshold=2)
        assert registry.get("search").policy.failure_threshold == 2
        resilience_closed("other")
        assert breaker("other").state == "closed"

    def test_nothing_leaks_from_the_previous_tests(self):
        assert charge() == "charged"
        assert get_backend().snapshot("payments-api", registry.get("payments-api").policy)
