"""Helpers for the engine tests: a fresh circuit, one call, a trip, a half-open circuit."""

from __future__ import annotations

from resilience import engine
from resilience.engine import CircuitState, Policy

T0 = 1_700_000_000_000  # a whole number of seconds, so 1 s buckets start on it


def fresh(name: str = "svc") -> CircuitState:
    return CircuitState(name, epoch="e1")


def call(state, policy, now, success=True, duration=1):
    """One acquire + record; returns (ticket, transitions from both)."""
    ticket = engine.acquire(state, policy, now)
    transitions = list(ticket.transitions)
    if ticket.admitted:
        transitions += engine.record(state, policy, now, ticket, success, duration)
    return ticket, transitions


def trip(state, policy, now):
    """Fail until the circuit opens; returns the ``opened`` transition."""
    for _ in range(10_000):
        _, transitions = call(state, policy, now, success=False)
        if transitions:
            assert [t.kind for t in transitions] == ["opened"]
            return transitions[0]
    raise AssertionError("never tripped")


def rate_policy(**kwargs):
    values = {"failure_threshold": 0, "failure_rate_threshold": 50, "minimum_calls": 10}
    return Policy(**{**values, **kwargs})


def half_open(policy, now=T0):
    state = fresh()
    trip(state, policy, now)
    return state, now + engine.open_duration_ms(policy, 1)
