"""Fixtures for event tests: transitions produced by a real backend, on the manual clock."""

from __future__ import annotations

import pytest

from resilience.engine import Policy


@pytest.fixture
def trip(memory_backend):
    """``trip(name, failures=3)`` -> the transitions that opened ``name`` on the backend."""

    def trip(name: str, failures: int = 3, policy: Policy | None = None) -> list:
        policy = policy or Policy(failure_threshold=failures)
        transitions = []
        for _ in range(failures):
            ticket = memory_backend.acquire(name, policy)
            transitions += memory_backend.record(ticket, policy, success=False, duration_ms=1)
        assert [t.kind for t in transitions] == ["opened"]
        return transitions

    return trip
