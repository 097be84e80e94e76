"""Fixtures shared by the whole suite."""

import pytest

from resilience.clock import ManualClock
from tests.support.celeryworker import make_default

# Shared tasks resolve to the suite's eager app in every thread, never Celery's fallback app
# (which would connect to amqp://localhost).
make_default()


@pytest.fixture
def clock():
    """A manual clock: tests advance time instead of sleeping."""
    return ManualClock(start_ms=1_700_000_000_000)


@pytest.fixture(autouse=True)
def _isolated_resilience():
    """Each test starts with a fresh backend and policy cache; no background refresh thread."""
    from resilience.backends import reset_backend
    from resilience.policies import registry

    registry.background = False
    registry.clear()
    reset_backend()
    yield
    registry.clear()
    reset_backend()


@pytest.fixture
def memory_backend(clock, settings):
    """The memory backend on the manual clock (``clock.advance(s)`` moves circuit time)."""
    from resilience.backends import get_backend

    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.memory.MemoryBackend",
        "OPTIONS": {"clock": clock},
    }
    return get_backend()
