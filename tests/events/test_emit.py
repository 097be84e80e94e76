"""emit(): one WARNING and exactly one CircuitEvent per transition, without blocking the caller."""

import logging
import threading
import time

import pytest
from django.db import connection, transaction

from resilience import events, signals
from resilience.backends import get_backend
from resilience.models import AlertStatus, CircuitEvent
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db(transaction=True)


class UpstreamError(Exception):
    pass


def test_transition_is_stored_once_with_its_context(trip, clock):
    policy = BreakerPolicyFactory(name="pay", alert_on_open=False)
    transitions = trip("pay")
    error = UpstreamError("GET https://svc:hunter2@api.example/v1 failed\nBearer abcdefgh12345")

    events.emit("pay", transitions, error=error)
    events.emit("pay", transitions, error=error)  # a duplicate hand-over is harmless
    assert events.flush(timeout=10)

    event = CircuitEvent.objects.get()
    assert event.transition_id == transitions[0].id
    assert (event.circuit, event.kind, event.from_state, event.to_state) == (
        "pay", "opened", "closed", "open"
    )  # fmt: skip
    assert event.policy == policy
    assert event.failure_count == 3
    assert event.created_at.timestamp() == clock.now_ms() / 1000
    assert event.origin.endswith(f":{__import__('os').getpid()}")
    assert event.error.endswith(
        "UpstreamError: GET https://svc:[redacted]@api.example/v1 failed Bearer [redacted]"
    )
    assert "hunter2" not in event.error and "abcdefgh12345" not in event.error
    assert "\n" not in event.error
    assert event.alert_status == AlertStatus.NONE
    assert get_backend().outbox("pay") == []  # acknowledged


def test_event_survives_the_callers_rolled_back_transaction(trip):
    BreakerPolicyFactory(name="pay")
    with pytest.raises(UpstreamError), transaction.atomic():
        BreakerPolicyFactory(name="rolled-back")
        events.emit("pay", trip("pay"), error=UpstreamError("503"))
        raise UpstreamError("the view failed")
    assert events.flush(timeout=10)
    assert CircuitEvent.objects.filter(circuit="pay", kind="opened").count() == 1
    assert not CircuitEvent.objects.filter(circuit="rolled-back").exists()


def test_each_transition_is_logged_once_at_warning(trip, caplog):
    caplog.set_level(logging.INFO, logger="resilience")
    events.emit("pay", trip("pay"), error=UpstreamError("token=s3cr3t refused"))
    assert events.flush(timeout=10)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert warnings[0].name == "resilience"
    assert message.startswith("Circuit pay opened (closed -> open); 3 failure(s);")
    assert "s3cr3t" not in message and "token=[redacted]" in message


def test_signals_are_sent_once_per_stored_event(trip, clock, memory_backend):
    received = []

    def receiver(sender, event, **kwargs):
        received.append((sender, event.kind, event.pk))

    def broken(sender, event, **kwargs):
        raise RuntimeError("a receiver bug must not stop anything")

    signals.circuit_opened.connect(broken)
    for signal in (signals.circuit_opened, signals.circuit_half_opened, signals.circuit_closed):
        signal.connect(receiver)
    try:
        opened = trip("pay")
        events.emit("pay", opened)
        events.emit("pay", opened)
        clock.advance(60)
        policy = pytest.importorskip("resilience.engine").Policy(failure_threshold=3)
        ticket = memory_backend.acquire("pay", policy)
        closed = memory_backend.record(ticket, policy, success=True, duration_ms=1)
        events.emit("pay", [*ticket.transitions, *closed])
        assert events.flush(timeout=10)
    finally:
        for signal in (signals.circuit_opened, signals.circuit_half_opened, signals.circuit_closed):
            signal.disconnect(receiver)
        signals.circuit_opened.disconnect(broken)
    assert [kind for _, kind, _ in received] == ["opened", "half_opened", "closed"]
    assert {sender for sender, _, _ in received} == {CircuitEvent}
    assert CircuitEvent.objects.count() == 3


def test_emit_never_raises_and_never_waits_for_the_database(trip):
    events.emit("pay", ["not a transition"])  # a bug upstream: logged, not raised
    transitions = trip("pay")
    locked, release = threading.Event(), threading.Event()

    def hold_the_table():
        # Another connection holds the event table: the writer has to wait, the caller not.
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("LOCK TABLE resilience_circuitevent IN ACCESS EXCLUSIVE MODE")
            else:
                BreakerPolicyFactory(name="writer-lock")
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.perf_counter()
        events.emit("pay", transitions, error=UpstreamError("down"))
        assert time.perf_counter() - started < 1.0  # emit never waits for the locked database
        assert not events.flush(timeout=0.5)  # the writer is stuck behind the lock
    finally:
        release.set()
        holder.join()
    assert events.flush(timeout=20)
    assert CircuitEvent.objects.filter(circuit="pay").count() == 1


def test_sync_emit_writes_in_the_callers_transaction_and_acks_after_commit(memory_backend):
    from resilience.engine import Policy

    transitions = memory_backend.reset("pay", Policy())
    with transaction.atomic():
        events.emit("pay", transitions, reason="manual", sync=True)
        assert CircuitEvent.objects.filter(kind="reset", reason="manual").count() == 1
        assert memory_backend.outbox("pay") == transitions  # not acknowledged before commit
    assert memory_backend.outbox("pay") == []
