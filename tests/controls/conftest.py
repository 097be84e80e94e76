"""Fixtures of the operator-control tests: ``pay``, a circuit whose "now" is the manual clock."""

import pytest

from resilience.policies import registry
from tests.factories import BreakerPolicyFactory


@pytest.fixture
def pay(breaker_db, clock):
    """The ``pay`` policy (2 failures open it); kill switches and maintenance windows start and
    end on ``clock`` (``clock.advance(s)``), not on the wall clock."""
    registry.clock = clock
    yield BreakerPolicyFactory(name="pay", failure_threshold=2)
    registry.clock = None
