"""Alert channels through a real Celery worker on a private Redis broker: each channel is its
own task, so a hung webhook never delays the e-mail, and a redelivered task never posts twice."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from resilience.models import AlertDelivery, AlertStatus, CircuitEvent
from tests.alerts.helpers import RECIPIENT, open_circuit, sweep_until
from tests.factories import BreakerPolicyFactory
from tests.support.celeryworker import CeleryWorker, broker_client
from tests.support.hooks import HookServer
from tests.support.redisproc import RedisProcess
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "whsec-celery-test"  # noqa: S105 - a test value


@pytest.fixture
def hooks():
    with HookServer() as server:
        yield server


def alert_settings(hooks: HookServer) -> dict:
    channels = [
        {"BACKEND": "resilience.channels.EmailChannel", "OPTIONS": {}},
        {
            "BACKEND": "resilience.channels.WebhookChannel",
            "OPTIONS": {"url": hooks.url(), "secret": SECRET, "timeout": 1},
        },
    ]
    alerts = {"DELIVERY": "celery", "RECIPIENTS": [RECIPIENT], "CHANNELS": channels}
    return {"BACKEND": "resilience.backends.memory.MemoryBackend", "ALERTS": alerts}


@pytest.fixture
def celery_channels(memory_backend, settings, smtp, hooks):
    settings.RESILIENCE = {**settings.RESILIENCE, **alert_settings(hooks)}
    settings.EMAIL_TIMEOUT = 1


def start_worker(broker: RedisProcess, smtp, hooks: HookServer) -> CeleryWorker:
    env = {
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SMTP_PORT": str(smtp.port),
        "RESILIENCE_TEST_EMAIL_TIMEOUT": "1",
        "RESILIENCE_TEST_SETTINGS": json.dumps(alert_settings(hooks)),
    }
    return CeleryWorker(broker.url, env).start()


def webhook_row(name: str, timeout: float = 10.0) -> AlertDelivery:
    rows = AlertDelivery.objects.filter(event__circuit=name, channel="webhook")
    row = wait_for(rows.first, timeout, 0.02)
    assert row is not None, f"no webhook delivery for {name}"
    return row


def wait_status(row: AlertDelivery, status: str, timeout: float = 30.0) -> None:
    def reached() -> bool:
        row.refresh_from_db()
        return row.status == status

    assert sweep_until(reached, timeout, 0.2), f"{row} is not {status}"


@pytest.mark.usefixtures("celery_channels")
def test_a_hung_webhook_never_delays_the_email_and_redelivery_never_posts_twice(
    redis_proc, smtp, hooks
):
    worker = start_worker(redis_proc, smtp, hooks)
    try:
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        hooks.hold_next()  # the webhook receiver takes the POST and does not answer
        with broker_client(redis_proc.url) as client:
            open_circuit("pay")
            assert len(hooks.wait_for(1)) == 1  # held
            assert len(smtp.wait_for(1, timeout=30)) == 1, worker.output()[-4000:]
            row = webhook_row("pay")
            assert row.status == AlertStatus.PENDING  # the e-mail did not wait for it
            hooks.release()
            wait_status(row, AlertStatus.SENT)  # timed out (1 s), retried, answered 200
            accepted = hooks.settle(quiet=1.0)
            # The held POST times out on the sender's side, so the retry is a second POST of
            # the same delivery (a receiver drops it by X-Resilience-Delivery).
            assert 1 <= len(accepted) <= 2
            assert {p.headers["x-resilience-delivery"] for p in accepted} == {str(row.pk)}

            # The broker redelivers the finished task (acks_late): nothing is posted again.
            before = len(hooks.posts)
            client.send_task("resilience.tasks.send_delivery", (row.pk,))
            client.send_task("resilience.tasks.send_alert", (row.event_id,))
            # No (wrong) second POST within 2 s.
            assert len(hooks.settle(quiet=2.0)) == len(accepted) and len(hooks.posts) == before
        assert len(smtp.settle(quiet=0.5)) == 1
        event = CircuitEvent.objects.get(pk=row.event_id)
        assert event.alert_status == AlertStatus.SENT
    finally:
        worker.close()


@pytest.mark.usefixtures("celery_channels")
def test_worker_killed_mid_post_delivers_with_at_most_one_duplicate(redis_proc, smtp, hooks):
    worker = start_worker(redis_proc, smtp, hooks)
    try:
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        hooks.hold_next()
        with broker_client(redis_proc.url):
            open_circuit("pay")
            assert len(hooks.wait_for(1)) == 1
            worker.kill()  # dies holding the claim, before it could mark the row
            hooks.release()
            row = webhook_row("pay")
            assert row.status == AlertStatus.PENDING
            worker = start_worker(redis_proc, smtp, hooks)
            wait_status(row, AlertStatus.SENT, timeout=60)  # once the dead claim is stale
        accepted = hooks.settle(quiet=1.0)
        assert 1 <= len(accepted) <= 2
        assert {p.headers["x-resilience-delivery"] for p in accepted} == {str(row.pk)}
    finally:
        worker.close()
