"""The not-closed index every backend keeps (``Backend.not_closed``): mixed into the contracts.

The admin reads it so that a render costs what it shows, not what the table holds: it must list
exactly the circuits whose snapshot says open or half-open, after every kind of transition.
"""

from __future__ import annotations

from resilience.engine import Policy
from tests.backends.contract import fail, succeed


def listed(backend, *names):
    index = backend.not_closed()
    assert index is not None, "the backend keeps no not-closed index"
    return {name: index[name] for name in names if name in index}


def agrees_with_snapshots(backend, policies):
    """The index lists exactly the circuits whose snapshot is not closed, with their state."""
    snaps = backend.snapshot_many(policies)
    expected = {name: s["state"] for name, s in snaps.items() if s["state"] != "closed"}
    assert listed(backend, *policies) == expected
    return expected


class NotClosedIndexContract:
    def test_index_follows_every_transition(self, backend, name, clock):
        policy = Policy(failure_threshold=2, recovery_timeout=10, success_threshold=1)
        other = name + "-other"
        assert listed(backend, name, other) == {}  # unknown circuits: closed, not listed
        succeed(backend, name, policy, times=3)
        fail(backend, name, policy)
        assert agrees_with_snapshots(backend, {name: policy, other: policy}) == {}
        fail(backend, name, policy)  # opened
        assert agrees_with_snapshots(backend, {name: policy, other: policy}) == {name: "open"}
        clock.advance(10)
        trial = backend.acquire(name, policy)  # half_opened
        assert agrees_with_snapshots(backend, {name: policy}) == {name: "half_open"}
        backend.record(trial, policy, False, 1)  # re-opened from half-open
        assert agrees_with_snapshots(backend, {name: policy}) == {name: "open"}
        clock.advance(20)
        succeed(backend, name, policy)  # half_opened, then closed
        assert agrees_with_snapshots(backend, {name: policy}) == {}
        fail(backend, other, policy, times=2)
        assert listed(backend, name, other) == {other: "open"}
        backend.reset(other, policy)
        backend.reset(name, policy)  # a reset of a closed circuit keeps it out
        assert agrees_with_snapshots(backend, {name: policy, other: policy}) == {}

    def test_index_of_many_circuits_lists_only_the_broken_ones(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=5)
        policies = {f"{name}-{i:03d}": policy for i in range(250)}
        for i, circuit in enumerate(policies):
            (fail if i % 7 == 0 else succeed)(backend, circuit, policy)
        clock.advance(5)
        for i, circuit in enumerate(policies):
            if i % 14 == 0:
                backend.acquire(circuit, policy)  # half_opened
        expected = agrees_with_snapshots(backend, policies)
        assert len(expected) == 36
        assert sum(1 for state in expected.values() if state == "half_open") == 18
