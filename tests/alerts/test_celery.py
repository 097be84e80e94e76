"""Alerts through a real Celery worker on a private Redis broker, to a real SMTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client

from resilience import CircuitOpenError, events
from resilience.backends import get_backend
from resilience.models import AlertStatus, CircuitEvent
from tests.alerts.helpers import RECIPIENT, UpstreamDown, make_call, open_circuit, sweep_until
from tests.factories import BreakerPolicyFactory
from tests.support.celeryworker import ROOT, CeleryWorker, broker_client
from tests.support.faultproxy import FaultProxy
from tests.support.redisproc import RedisProcess
from tests.support.waiting import wait_for, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ALERTS = {"DELIVERY": "celery", "RECIPIENTS": [RECIPIENT], "SITE_URL": "https://ops.example.com"}
MEMORY = {"BACKEND": "resilience.backends.memory.MemoryBackend", "ALERTS": ALERTS}
CALL_BOUND = 0.25  # seconds: a protected call never waits for the broker


def start_worker(broker: RedisProcess, smtp, email_timeout: float = 5) -> CeleryWorker:
    env = {
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SMTP_PORT": str(smtp.port),
        "RESILIENCE_TEST_EMAIL_TIMEOUT": str(email_timeout),
        "RESILIENCE_TEST_SETTINGS": json.dumps(MEMORY),
    }
    return CeleryWorker(broker.url, env).start()


@pytest.fixture(scope="module")
def broker():
    with RedisProcess() as server:
        yield server


@pytest.fixture(scope="module")
def worker(django_db_setup, broker, smtp_server):
    running = start_worker(broker, smtp_server)
    yield running
    running.close()


@pytest.fixture
def celery_alerts(memory_backend, settings, smtp):
    """This process publishes alerts as Celery tasks (the worker fixture picks the broker)."""
    settings.RESILIENCE = {**settings.RESILIENCE, "ALERTS": ALERTS}
    return get_backend()  # rebuilt for the new settings, on the same manual clock


def slowest_call_while_opening(name: str) -> float:
    """Three failing calls (the third opens the circuit) and one rejected call: the slowest."""
    call = make_call(name)
    durations = []
    for expected in (UpstreamDown, UpstreamDown, UpstreamDown, CircuitOpenError):
        started = time.perf_counter()
        with pytest.raises(expected):
            call()
        durations.append(time.perf_counter() - started)
    return max(durations)


def stored(name: str, timeout: float = 10.0) -> CircuitEvent:
    """The opened event, written by the background thread within a couple of seconds."""
    event = wait_for(CircuitEvent.objects.filter(circuit=name, kind="opened").first, timeout, 0.02)
    assert event is not None, f"no opened event for {name}"
    return event


def one_message(smtp, worker: CeleryWorker, timeout: float = 40.0):
    """The single message the SMTP server received (the worker's log explains a failure)."""
    messages = smtp.wait_for(1, timeout)
    assert len(messages) == 1, worker.output()[-4000:]
    return messages[0]


def status(event: CircuitEvent) -> str:
    event.refresh_from_db()
    return event.alert_status


def final_status(event: CircuitEvent, timeout: float = 10.0) -> str:
    """The status once no sender holds the row (the worker marks it just after SMTP said 250)."""
    wait_until(lambda: status(event) != AlertStatus.PENDING, timeout, 0.05)
    return event.alert_status


@pytest.mark.usefixtures("celery_alerts")
class TestWorker:
    def test_opening_is_mailed_by_the_worker(self, worker, broker, smtp):
        BreakerPolicyFactory(name="payments-api", failure_threshold=3)
        with broker_client(broker.url):
            open_circuit("payments-api")
            message = one_message(smtp, worker)
        assert message["Subject"] == "[resilience] Circuit opened: payments-api"
        assert len(smtp.settle(quiet=0.5)) == 1
        assert final_status(stored("payments-api")) == AlertStatus.SENT

    def test_transient_smtp_errors_are_retried_with_backoff(self, worker, broker, smtp):
        smtp.fail_next(451, times=3)
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        with broker_client(broker.url):
            open_circuit("pay")
            one_message(smtp, worker)
        assert len(smtp.settle(quiet=1.0)) == 1
        event = stored("pay")
        assert final_status(event) == AlertStatus.SENT
        assert event.alert_attempts == smtp.attempts == 4

    def test_permanent_smtp_error_fails_without_a_retry_storm(self, worker, broker, smtp):
        smtp.fail_always(550)
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        with broker_client(broker.url):
            open_circuit("pay")
            event = stored("pay")
            assert final_status(event, timeout=20) == AlertStatus.FAILED
            time.sleep(1.5)  # time for any (wrong) retry to show up
            assert events.drain() == 0  # the sweeper leaves failed alerts alone
        assert (status(event), event.alert_attempts, smtp.attempts) == ("failed", 1, 1)
        assert smtp.messages == []

    @pytest.mark.urls("tests.alerts.urls")
    def test_rolled_back_request_still_records_and_mails(self, worker, broker, smtp, monkeypatch):
        monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
        BreakerPolicyFactory(name="atomic-upstream", failure_threshold=3)
        client = Client(raise_request_exception=False)
        with broker_client(broker.url):
            codes = [client.get("/checkout/").status_code for _ in range(4)]
            message = one_message(smtp, worker)
        assert codes == [500] * 4  # three upstream failures, then the open circuit
        assert not get_user_model().objects.filter(username__startswith="visitor-").exists()
        assert message["Subject"] == "[resilience] Circuit opened: atomic-upstream"
        assert final_status(stored("atomic-upstream")) == AlertStatus.SENT

    def test_sixteen_processes_trip_once_and_mail_once(
        self, worker, broker, smtp, redis_url, settings, tmp_path
    ):
        # A generous socket timeout: on a loaded machine a process must not fall back to local
        # state (ON_BACKEND_ERROR) and legitimately open its own circuit.
        options = {"url": redis_url, "prefix": "sixteen", "socket_timeout": 2.0}
        backend = {"BACKEND": "resilience.backends.redis.RedisBackend", "OPTIONS": options}
        settings.RESILIENCE = {**backend, "ALERTS": ALERTS}
        BreakerPolicyFactory(name="shared", failure_threshold=5, recovery_timeout=600)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
            "PYTHONPATH": str(ROOT),
            "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
            "RESILIENCE_TEST_BROKER_URL": broker.url,
            "RESILIENCE_TEST_SETTINGS": json.dumps(settings.RESILIENCE),
        }
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "tests.alerts.tripper", str(tmp_path), "shared", "16"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until(
                lambda: len(list(tmp_path.glob("ready-*"))) >= 16 or proc.poll() is not None,
                60,
                0.02,
            )
            assert proc.poll() is None, proc.communicate()
            (tmp_path / "go").touch()  # all 16 call at the same moment
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        results = [json.loads(line) for line in out.splitlines()]
        assert len({r["pid"] for r in results}) == 16 and all(r["flushed"] for r in results)
        assert sum(r["failed"] for r in results) >= 5
        with broker_client(broker.url):
            events.drain()  # whatever a child could not finish: must not add a second event
            message = one_message(smtp, worker)
            assert len(smtp.settle(quiet=1.5)) == 1
        assert CircuitEvent.objects.filter(circuit="shared").count() == 1, err
        assert final_status(stored("shared")) == AlertStatus.SENT
        assert message["Subject"] == "[resilience] Circuit opened: shared"


@pytest.mark.usefixtures("celery_alerts")
@pytest.mark.parametrize("outage", ["stopped", "paused"])
def test_broker_outage_never_slows_the_call_and_loses_nothing(outage, redis_proc, smtp):
    worker = start_worker(redis_proc, smtp)
    try:
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        with broker_client(redis_proc.url):
            redis_proc.stop() if outage == "stopped" else redis_proc.pause()
            assert slowest_call_while_opening("pay") < CALL_BOUND
            event = stored("pay")  # recorded although alerts cannot be queued
            assert smtp.settle(quiet=1.0) == []  # nothing mailed for a second
            assert status(event) == AlertStatus.PENDING
            redis_proc.start() if outage == "stopped" else redis_proc.resume()
            sweep_until(lambda: smtp.messages)
            assert len(smtp.settle(quiet=1.5)) == 1
        assert final_status(event) == AlertStatus.SENT
    finally:
        worker.close()


@pytest.mark.usefixtures("celery_alerts")
@pytest.mark.parametrize("fault", ["blackhole", "reset"])
def test_network_fault_between_site_and_broker_loses_nothing(
    fault, redis_proc, smtp, caplog, monkeypatch
):
    """The site's link to the broker breaks (through a TCP proxy); the worker's does not.

    ``blackhole``: the broker seems hung (connections accepted, nothing answered), so each
    publish waits for the transport's socket timeout; ``reset``: every connection is reset.
    Healing waits until a publish has failed for good (and the alert is still pending).
    """
    from resilience import writer

    monkeypatch.setattr(writer, "LOG_EVERY_SECONDS", 0)  # each failed publish is logged
    worker = start_worker(redis_proc, smtp)
    try:
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        with (
            FaultProxy(redis_proc.host, redis_proc.port) as proxy,
            broker_client(proxy.url(), socket_timeout=1, socket_connect_timeout=1),
        ):
            getattr(proxy, fault)()
            assert slowest_call_while_opening("pay") < CALL_BOUND
            event = stored("pay")  # the writer stores it; only the publish is stuck or refused
            assert wait_until(lambda: "cannot dispatch the alert" in caplog.text, 30, 0.1)
            assert status(event) == AlertStatus.PENDING and smtp.messages == []
            proxy.heal()
            sweep_until(lambda: smtp.messages)
            assert len(smtp.settle(quiet=1.5)) == 1, worker.output()[-4000:]
        assert final_status(event) == AlertStatus.SENT
    finally:
        worker.close()


@pytest.mark.usefixtures("celery_alerts")
def test_worker_killed_mid_send_delivers_with_at_most_one_duplicate(redis_proc, smtp, settings):
    settings.EMAIL_TIMEOUT = 1  # the claim of a dead sender goes stale after 3 x 1 + 10 s
    worker = start_worker(redis_proc, smtp, email_timeout=1)
    try:
        BreakerPolicyFactory(name="pay", failure_threshold=3)
        smtp.hold_next()  # receive the message, then never answer: the worker is stuck in DATA
        with broker_client(redis_proc.url):
            open_circuit("pay")
            smtp.wait_for(1)
            worker.kill()
            smtp.release()
            event = stored("pay")
            assert status(event) == AlertStatus.PENDING
            worker = start_worker(redis_proc, smtp, email_timeout=1)
            sweep_until(lambda: status(event) == AlertStatus.SENT)
        messages = smtp.settle(quiet=1.0)
        assert status(event) == AlertStatus.SENT
        assert 1 <= len(messages) <= 2
        assert len({m["Message-ID"] for m in messages}) == 1
    finally:
        worker.close()


def test_beat_schedule_task_drains(celery_alerts, settings):
    """``drain_outbox`` is what beat runs: stores outbox leftovers (eager app of the suite)."""
    from resilience.engine import Policy
    from resilience.tasks import drain_outbox

    BreakerPolicyFactory(name="pay")
    celery_alerts.reset("pay", Policy())
    assert drain_outbox.delay().get() == 1
    assert CircuitEvent.objects.filter(circuit="pay", kind="reset").count() == 1
