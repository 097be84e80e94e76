"""Circuits that move without a call (``advance``, ``snapshot_current``) and idle circuits
forgotten (``retire``): mixed into the memory and Redis contracts, on the manual clock."""

from __future__ import annotations

from resilience.engine import Policy
from tests.backends.contract import fail, succeed
from tests.backends.index_contract import listed


class SweepContract:
    def test_a_quiet_circuit_moves_to_half_open_once_its_open_time_has_passed(
        self, backend, name, clock
    ):
        policy = Policy(failure_threshold=1, recovery_timeout=10)
        fail(backend, name, policy)
        assert backend.advance([name]) == {}  # not yet
        clock.advance(9.999)
        assert backend.advance([name, name + "-unknown"]) == {}
        clock.advance(0.001)
        moved = backend.advance([name])
        [transition] = moved[name]
        assert (transition.kind, transition.from_state, transition.to_state) == (
            "half_opened",
            "open",
            "half_open",
        )
        assert transition.id in {t.id for t in backend.outbox(name)}
        assert backend.advance([name]) == {}  # once
        assert backend.snapshot(name, policy)["state"] == "half_open"
        assert listed(backend, name) == {name: "half_open"}
        trial = backend.acquire(name, policy)  # the next call is the trial, no second move
        assert (trial.admitted, trial.state, trial.transitions) == (True, "half_open", ())
        assert [t.kind for t in backend.record(trial, policy, True, 1)] == ["closed"]

    def test_snapshot_current_moves_what_is_due_and_hands_it_on(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=5)
        handed = []
        backend.on_background_transitions = lambda circuit, ts: handed.append((circuit, ts))
        fail(backend, name, policy)
        other = name + "-closed"
        succeed(backend, other, policy)
        assert backend.snapshot_current({name: policy})[name]["state"] == "open"
        clock.advance(5)
        snaps = backend.snapshot_current({name: policy, other: policy})
        assert (snaps[name]["state"], snaps[other]["state"]) == ("half_open", "closed")
        assert [(c, [t.kind for t in ts]) for c, ts in handed] == [(name, ["half_opened"])]

    def test_an_idle_closed_circuit_is_retired_and_starts_afresh(self, backend, name, clock):
        policy = Policy(failure_threshold=3, window_seconds=10)
        succeed(backend, name, policy)
        fail(backend, name, policy)
        backend.flush()
        assert backend.retire([name], idle_ms=60_000) == []  # used a moment ago
        clock.advance(59)
        assert backend.retire([name], idle_ms=60_000) == []
        clock.advance(2)
        assert backend.retire([name, name + "-never"], idle_ms=60_000) == [name]
        assert backend.retire([name], idle_ms=60_000) == []  # nothing left to forget
        snap = backend.snapshot(name, policy)
        assert (snap["generation"], snap["consecutive_failures"], snap["calls_in_window"]) == (
            0,
            0,
            0,
        )
        ticket = backend.acquire(name, policy)  # used again: a fresh circuit
        assert ticket.admitted
        backend.record(ticket, policy, False, 1)
        assert backend.snapshot(name, policy)["consecutive_failures"] == 1

    def test_open_busy_or_unstored_circuits_are_not_retired(self, backend, name, clock):
        policy = Policy(failure_threshold=1, recovery_timeout=3600)
        opened = name + "-open"
        fail(backend, opened, policy)
        tracked = Policy(max_concurrent_calls=2)
        held = backend.acquire(name, tracked)  # a call in flight, holding a bulkhead slot
        clock.advance(2)  # within the slot's lease
        assert backend.retire([opened, name], idle_ms=1000) == []
        assert backend.snapshot(opened, policy)["state"] == "open"
        backend.record(held, tracked, True, 1)
        backend.return_slot(held, tracked)
        backend.flush()
        clock.advance(10)  # past the end of the window bucket the success was counted in
        # The opening's transitions are still in the outbox (not stored as events yet).
        backend.reset(opened, policy)
        assert backend.retire([opened], idle_ms=1000) == []
        backend.ack(opened, [t.id for t in backend.outbox(opened)])
        # Reset a moment ago, nothing recorded since: idle once found so for idle_ms.
        assert backend.retire([opened, name], idle_ms=1000) == [name]
        clock.advance(1)
        assert backend.retire([opened], idle_ms=1000) == [opened]
        assert listed(backend, opened) == {}

    def test_a_circuit_with_no_call_recorded_yet_is_not_retired_at_once(self, backend, name, clock):
        """Before: an empty window counted as idle, so a circuit made (or closed) a moment ago
        was retired by the next sweep while its first calls were still running (a closed call
        holds nothing in the backend), and their failures were then ignored as late: a host
        hanging every call never tripped while new hosts kept the sweep coming."""
        policy = Policy(failure_threshold=1)
        running = backend.acquire(name, policy)  # the circuit's first call, still running
        assert backend.retire([name], idle_ms=60_000) == []
        clock.advance(30)
        assert backend.retire([name], idle_ms=60_000) == []
        assert [t.kind for t in backend.record(running, policy, False, 30_000)] == ["opened"]
        assert backend.snapshot(name, policy)["state"] == "open"
        # Nothing recorded since the closing: idle once a sweep has seen it so for idle_ms.
        backend.reset(name, policy)
        backend.ack(name, [t.id for t in backend.outbox(name)])
        assert backend.retire([name], idle_ms=60_000) == []
        clock.advance(59.999)
        assert backend.retire([name], idle_ms=60_000) == []
        clock.advance(0.001)
        assert backend.retire([name], idle_ms=60_000) == [name]
