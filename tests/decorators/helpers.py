"""Helpers for the decorator tests: circuits that fail on demand, settings-only policies."""

import pytest

from resilience import circuit_breaker, events
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory


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


def use_policies(settings, **policies):
    """Policies from settings: async tests cannot touch the ORM from the event loop."""
    settings.RESILIENCE = {**settings.RESILIENCE, "POLICIES": policies}


def half_open(name, clock):
    BreakerPolicyFactory(name=name, failure_threshold=1, recovery_timeout=5)
    trip(name, 1)
    clock.advance(5)
