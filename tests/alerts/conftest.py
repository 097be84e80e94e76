"""Fixtures for alert tests: a real SMTP server, and a circuit that opens on demand."""

from __future__ import annotations

import pytest

from resilience import CircuitOpenError, circuit_breaker, delivery, events
from resilience.backends import get_backend
from resilience.models import AlertDelivery, AlertStatus, CircuitEvent
from tests.support.smtp import SMTPServer

RECIPIENT = "oncall@example.com"


@pytest.fixture(scope="session")
def smtp_server():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server, settings):
    """The SMTP server, emptied, as this process's e-mail backend."""
    smtp_server.clear()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "resilience@example.com"
    yield smtp_server
    smtp_server.release()


@pytest.fixture
def sync_alerts(memory_backend, settings, smtp):
    """Memory backend on the manual clock; alerts sent from this process's background thread."""
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "ALERTS": {"DELIVERY": "sync", "RECIPIENTS": [RECIPIENT],
                   "SITE_URL": "https://ops.example.com"},
    }  # fmt: skip
    yield get_backend()  # rebuilt for the new settings, on the same manual clock
    events.flush(timeout=10)
    events.discard()


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
