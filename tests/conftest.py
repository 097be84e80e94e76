"""Fixtures shared by the whole suite."""

import pytest

from resilience.clock import ManualClock


@pytest.fixture
def clock():
    """A manual clock: tests advance time instead of sleeping."""
    return ManualClock(start_ms=1_700_000_000_000)
