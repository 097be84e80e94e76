"""Helpers of the alert tests: a circuit that opens on demand, its opened event and delivery.
(The SMTP server and ``sync_alerts`` are fixtures of tests/conftest.py.)"""

from __future__ import annotations

import pytest

from resilience import CircuitOpenError, circuit_breaker, delivery, events
from resilience.models import AlertDelivery, AlertStatus, CircuitEvent
from tests.support.waiting import wait_until

RECIPIENT = "oncall@example.com"


class UpstreamDown(Exception):
    pass


def make_call(name: str):
    """A protected call: ``call(ok=False)`` fails with an error carrying a secret."""

    @circuit_breaker(name)
    def call(ok: bool = False) -> str:
        if not ok:
            raise UpstreamDown("POST https://user:pa55word@pay.example/charge -> 503")
        return "ok"

    return call


def open_circuit(name: str, failures: int = 3) -> None:
    call = make_call(name)
    for _ in range(failures):
        with pytest.raises(UpstreamDown):
            call()
    with pytest.raises(CircuitOpenError):
        call()


def opened_event(name: str) -> CircuitEvent:
    """The ``opened`` event of ``name``, once this process has stored it and sent its alerts."""
    assert events.flush(timeout=20)
    return CircuitEvent.objects.get(circuit=name, kind="opened")


def pending_delivery(name: str) -> AlertDelivery:
    """The e-mail delivery of the opened event of ``name`` (a policy with ``alert_on_open``
    off), made pending by hand: the test sends it when it wants."""
    event = opened_event(name)
    CircuitEvent.objects.filter(pk=event.pk).update(alert_status=AlertStatus.PENDING)
    assert delivery.plan(event) == AlertStatus.PENDING
    return AlertDelivery.objects.get(event=event, channel="email")


def sweep_until(condition, timeout: float = 60.0, interval: float = 0.5) -> bool:
    """Run the sweeper (Celery beat / ``manage.py resilience drain``) every ``interval`` s until
    ``condition()`` (True) or ``timeout`` s passed (False)."""

    def swept() -> bool:
        events.drain()
        return bool(condition())

    return wait_until(swept, timeout, interval)
