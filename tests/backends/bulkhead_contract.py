"""The bulkhead part of the backend contract (``max_concurrent_calls``, leased slots).

Mixed into the memory and Redis contract classes next to ``BackendContract``; the ``backend``
fixture is built on the ``clock`` fixture (a ``ManualClock``).
"""

from __future__ import annotations

from resilience.engine import BULKHEAD_FULL, Policy
from resilience.engine_types import MIN_SLOT_LEASE_MS
from tests.backends.contract import fail

CAPPED = Policy(max_concurrent_calls=2, failure_threshold=2, recovery_timeout=10)


class BulkheadContract:
    def test_the_cap_refuses_the_call_over_it(self, backend, name):
        first, second = backend.acquire(name, CAPPED), backend.acquire(name, CAPPED)
        assert first.admitted and second.admitted
        assert first.slot and second.slot and first.slot != second.slot
        refused = backend.acquire(name, CAPPED)
        assert (refused.admitted, refused.state, refused.slot) == (False, BULKHEAD_FULL, None)
        # No deadline: told to come back within a second.
        assert refused.retry_after_ms == 1000
        snap = backend.snapshot(name, CAPPED)
        assert (snap["in_flight"], snap["max_concurrent_calls"], snap["state"]) == (2, 2, "closed")

    def test_a_returned_slot_admits_the_next_call(self, backend, name):
        held = [backend.acquire(name, CAPPED) for _ in range(2)]
        backend.record(held[0], CAPPED, True, 1)
        backend.return_slot(held[0], CAPPED)
        assert backend.snapshot(name, CAPPED)["in_flight"] == 1
        assert backend.acquire(name, CAPPED).admitted
        assert not backend.acquire(name, CAPPED).admitted

    def test_a_killed_process_slot_lapses_with_its_lease(self, backend, name, clock):
        for _ in range(2):
            assert backend.acquire(name, CAPPED).admitted  # never returned: the process died
        assert CAPPED.slot_lease_ms == MIN_SLOT_LEASE_MS
        clock.advance(MIN_SLOT_LEASE_MS / 1000 - 0.001)
        refused = backend.acquire(name, CAPPED)
        assert refused.state == BULKHEAD_FULL and refused.retry_after_ms == 1
        clock.advance(0.001)
        assert backend.snapshot(name, CAPPED)["in_flight"] == 0
        assert backend.acquire(name, CAPPED).admitted

    def test_renewed_leases_outlive_the_first(self, backend, name, clock):
        held = [backend.acquire(name, CAPPED) for _ in range(2)]
        clock.advance(MIN_SLOT_LEASE_MS / 2000)
        backend.renew_slots(name, CAPPED, held)
        clock.advance(MIN_SLOT_LEASE_MS / 1000 - 0.001)  # past the first lease, not the new one
        assert backend.acquire(name, CAPPED).state == BULKHEAD_FULL

    def test_the_deadline_bounds_retry_after(self, backend, name, clock):
        policy = Policy(max_concurrent_calls=1, call_timeout_ms=300, slow_call_ms=200)
        assert policy.deadline_ms == 200 and policy.slot_lease_ms == MIN_SLOT_LEASE_MS
        assert backend.acquire(name, policy).admitted
        assert backend.acquire(name, policy).retry_after_ms == 200

    def test_an_open_circuit_refuses_before_the_bulkhead(self, backend, name):
        policy = Policy(max_concurrent_calls=1, failure_threshold=1, recovery_timeout=10)
        assert [t.kind for t in fail(backend, name, policy)] == ["opened"]
        refused = backend.acquire(name, policy)
        assert (refused.admitted, refused.state) == (False, "open")

    def test_slots_outlive_transitions_and_resets(self, backend, name):
        policy = Policy(max_concurrent_calls=3, failure_threshold=1, recovery_timeout=10)
        running = backend.acquire(name, policy)
        assert [t.kind for t in fail(backend, name, policy)] == ["opened"]  # its slot: back?
        backend.reset(name, policy)
        snap = backend.snapshot(name, policy)
        # The failing call never gave its slot back (the helper does not): two run on.
        assert snap["in_flight"] == 2
        backend.return_slot(running, policy)
        assert backend.snapshot(name, policy)["in_flight"] == 1

    def test_monitor_mode_runs_the_call_over_the_cap(self, backend, name):
        policy = Policy(mode="monitor", max_concurrent_calls=1)
        first, over = backend.acquire(name, policy), backend.acquire(name, policy)
        assert first.admitted and not first.over_cap
        assert over.admitted and over.over_cap and over.slot
        assert backend.snapshot(name, policy)["in_flight"] == 2

    def test_a_half_open_trial_takes_a_slot_and_a_permit(self, backend, name, clock):
        policy = Policy(max_concurrent_calls=2, failure_threshold=1, recovery_timeout=1)
        fail(backend, name, policy)
        clock.advance(1)
        trial = backend.acquire(name, policy)
        assert (trial.state, trial.admitted) == ("half_open", True)
        assert trial.permit and trial.slot
        assert [t.kind for t in backend.record(trial, policy, True, 1)] == ["closed"]
        backend.return_slot(trial, policy)

    def test_untracked_calls_take_no_slot(self, backend, name):
        policy = Policy()
        ticket = backend.acquire(name, policy)
        assert ticket.admitted and ticket.slot is None
        backend.return_slot(ticket, policy)  # a no-op
        assert backend.snapshot(name, policy)["in_flight"] is None

    def test_a_deadline_alone_tracks_calls_in_flight(self, backend, name):
        policy = Policy(slow_call_ms=500)
        ticket = backend.acquire(name, policy)
        assert ticket.slot
        assert backend.snapshot(name, policy)["in_flight"] == 1
        backend.record(ticket, policy, True, 1)
        backend.return_slot(ticket, policy)
        assert backend.snapshot(name, policy)["in_flight"] == 0
