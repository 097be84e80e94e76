"""The seam below the events layer: the backends and the call path record through
``resilience.recorder``, which the app installs when it is ready."""

import pytest
from django.core.exceptions import AppRegistryNotReady

from resilience import breaker, circuit_breaker, events, recorder
from resilience.backends import get_backend
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_recorder():
    """As before ``ResilienceConfig.ready``: nobody to record to."""
    recorder.install(None)
    yield
    recorder.install(events)


def test_the_app_installs_the_events_layer():
    assert recorder._recorder is events


def test_a_backends_own_transitions_reach_the_events_layer(trip):
    """``Backend.on_background_transitions`` (what the Redis backend's background send calls)
    hands them to the events layer, which stores and acknowledges them."""
    BreakerPolicyFactory(name="pay", alert_on_open=False)
    transitions = trip("pay")
    get_backend().on_background_transitions("pay", transitions)
    assert events.flush(timeout=10)
    assert CircuitEvent.objects.get().transition_id == transitions[0].id
    assert get_backend().outbox("pay") == []


def test_without_a_recorder_transitions_wait_in_the_outbox(no_recorder, memory_backend):
    BreakerPolicyFactory(name="pay", failure_threshold=1, alert_on_open=False)

    @circuit_breaker("pay")
    def call():
        raise ValueError("upstream down")

    with pytest.raises(ValueError):
        call()
    assert events.flush(timeout=10)
    assert not CircuitEvent.objects.exists()
    assert [t.kind for t in memory_backend.outbox("pay")] == ["opened"]
    recorder.install(events)
    assert events.drain() == 1  # the sweeper stores it
    assert CircuitEvent.objects.get().kind == "opened"


def test_without_a_recorder_a_manual_action_raises(no_recorder, memory_backend):
    with pytest.raises(AppRegistryNotReady):
        breaker("pay").force_open(reason="maintenance")
