"""Database trouble: transitions wait in the backend outbox and are stored exactly once later."""

import contextlib
import os

import pytest
from django.db import connections

from resilience import events
from resilience.engine import Policy
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.support.redisproc import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def database_unreachable():
    """New connections fail (bad file / closed port); the test thread keeps its open one."""
    settings = connections.settings["default"]
    key, value = (
        ("NAME", "/nonexistent/resilience.sqlite3")
        if settings["ENGINE"].endswith("sqlite3")
        else ("PORT", str(free_port()))
    )
    saved = settings[key]
    settings[key] = value
    try:
        yield
    finally:
        settings[key] = saved


def test_writer_retries_until_the_database_is_back(trip, memory_backend):
    transitions = trip("pay")
    with database_unreachable():
        events.emit("pay", transitions, error=ValueError("upstream 503"))
        assert not events.flush(timeout=1.5)
        assert memory_backend.outbox("pay") == transitions
    assert events.flush(timeout=60)
    event = CircuitEvent.objects.get()
    assert event.error == "ValueError: upstream 503"  # the writer kept the context
    assert memory_backend.outbox("pay") == []


def test_drain_stores_what_a_dead_process_left_in_the_outbox(trip, memory_backend):
    BreakerPolicyFactory(name="pay")
    transitions = trip("pay")
    with database_unreachable():
        events.emit("pay", transitions)
        assert not events.flush(timeout=0.5)
        events.discard()  # the process dies before the database comes back
    assert not CircuitEvent.objects.exists()

    assert events.drain() == 1
    event = CircuitEvent.objects.get()
    assert event.transition_id == transitions[0].id and event.kind == "opened"
    assert event.origin == f"{os.uname().nodename}:{os.getpid()}"
    assert memory_backend.outbox("pay") == []
    assert events.drain() == 0


def test_drain_is_idempotent_with_the_writer_and_honours_the_limit(trip, memory_backend, clock):
    policy = Policy(failure_threshold=1, recovery_timeout=1)
    for _ in range(3):  # opened, half_opened, opened, ... five transitions left in the outbox
        ticket = memory_backend.acquire("flappy", policy)
        memory_backend.record(ticket, policy, success=False, duration_ms=1)
        clock.advance(2)
    pending = memory_backend.outbox("flappy")
    assert len(pending) == 5
    events.emit("flappy", pending[:2])
    assert events.flush(timeout=10)

    # The last opening's open time has passed: drain moves the quiet circuit to half-open
    # first (Backend.advance), one more transition in the outbox.
    assert events.drain(limit=2) == 2
    assert len(memory_backend.outbox("flappy")) == 2
    assert events.drain() == 2
    assert CircuitEvent.objects.filter(circuit="flappy").count() == 6
    stored = CircuitEvent.objects.order_by("created_at", "id")
    assert set(t.id for t in pending) < set(stored.values_list("transition_id", flat=True))
    assert stored.last().kind == "half_opened"


def test_record_action_stores_manual_actions_with_their_actor(memory_backend):
    user = UserFactory(username="ops")
    policy = BreakerPolicyFactory(name="pay")
    forced = events.record_action(
        "pay", "forced_open", actor=user, reason="vendor outage", from_state="closed",
        to_state="forced_open",
    )  # fmt: skip
    assert (forced.kind, forced.actor, forced.reason, forced.policy) == (
        "forced_open", user, "vendor outage", policy
    )  # fmt: skip
    assert forced.transition_id is None and forced.alert_status == "none"

    [reset] = memory_backend.reset("pay", Policy())
    event = events.record_action("pay", "reset", actor=user, reason="fixed", transition=reset)
    assert event.transition_id == reset.id and event.to_state == "closed"
    assert events.record_action("pay", "reset", transition=reset).pk == event.pk
    assert memory_backend.outbox("pay") == []
    assert events.drain() == 0
    assert CircuitEvent.objects.filter(circuit="pay").count() == 2

    with pytest.raises(ValueError):
        events.record_action("pay", "exploded")
