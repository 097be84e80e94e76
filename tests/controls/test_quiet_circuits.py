"""Circuits that move on their own: once its open time has passed, a circuit nobody calls reads
half-open in the admin, the health endpoint, the metrics and the status command (one
``half_opened`` event, no alert), and the recovery alert goes out with the first good call."""

import json

import pytest
from django.core import mail
from prometheus_client.parser import text_string_to_metric_families

from resilience import breaker, circuit_breaker, events
from resilience.models import CircuitEvent
from tests.commands.helpers import run_json
from tests.factories import BreakerPolicyFactory, UserFactory

pytestmark = [pytest.mark.urls("tests.support.site_urls"), pytest.mark.usefixtures("breaker_db")]


@circuit_breaker("pay")
def charge(fail):
    if fail:
        raise ConnectionError("down")
    return "ok"


@pytest.fixture
def quiet(breaker_db, settings, clock):
    """pay: critical, opened by two failures, then nobody calls it for 31 s (open time 30 s)."""
    settings.RESILIENCE = {**settings.RESILIENCE, "ALERTS": {"DELIVERY": "sync"}}
    BreakerPolicyFactory(
        name="pay",
        failure_threshold=2,
        recovery_timeout=30,
        critical=True,
        alert_on_recovery=True,
        alert_recipients="oncall@example.com",
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge(True)
    assert events.flush(timeout=10)
    assert breaker("pay").state == "open"
    clock.advance(31)


@pytest.fixture
def staff(breaker_db, client):
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def half_opened():
    assert events.flush(timeout=10)
    return list(
        CircuitEvent.objects.filter(kind="half_opened").values_list("alert_status", flat=True)
    )


@pytest.mark.usefixtures("quiet")
class TestQuietCircuitReadsHalfOpen:
    def test_health(self, staff):
        body = json.loads(staff.get("/resilience/health/").content)
        assert body["circuits"]["pay"]["state"] == "half_open"
        assert body["circuits"]["pay"]["retry_after"] == 0
        # Half-open is not recovered yet: a critical circuit still degrades the site.
        assert body["status"] == "degraded"
        assert half_opened() == ["none"]  # recorded once, not alerted

    def test_metrics(self, staff):
        text = staff.get("/resilience/metrics/").content.decode()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        state = "resilience_circuit_state"
        assert samples[(state, (("circuit", "pay"), ("state", "half_open")))] == 1
        assert samples[(state, (("circuit", "pay"), ("state", "open")))] == 0
        assert half_opened() == ["none"]

    @pytest.mark.urls("tests.urls")
    def test_admin_list_and_page(self, staff):
        listing = staff.get("/admin/resilience/breakerpolicy/").content.decode()
        assert "rs-badge rs-half_open" in listing
        assert "rs-badge rs-open" not in listing
        page = staff.get("/admin/resilience/breakerpolicy/?live=half_open").content.decode()
        assert ">pay</a>" in page
        assert half_opened() == ["none"]

    def test_status_command(self):
        assert run_json("status", "pay")["circuits"]["pay"]["state"] == "half_open"

    def test_drain_moves_it_with_nobody_looking(self):
        events.drain()
        assert half_opened() == ["none"]
        assert breaker("pay").snapshot()["state"] == "half_open"

    def test_the_recovery_alert_goes_with_the_first_good_call(self, staff):
        staff.get("/resilience/health/")  # half-open, moved by the reader
        assert charge(False) == "ok"  # the trial: closes it
        assert events.flush(timeout=10)
        closed = CircuitEvent.objects.get(kind="closed")
        assert closed.alert_status == "sent"
        assert [m.subject for m in mail.outbox][-1] == "[resilience] Circuit closed: pay"
        body = json.loads(staff.get("/resilience/health/").content)
        assert (body["status"], body["circuits"]["pay"]["state"]) == ("healthy", "closed")


def test_a_circuit_still_inside_its_open_time_stays_open(staff, clock, quiet):
    breaker("pay").reset()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge(True)
    clock.advance(29)
    body = json.loads(staff.get("/resilience/health/").content)
    assert body["circuits"]["pay"]["state"] == "open"
    assert body["circuits"]["pay"]["retry_after"] == pytest.approx(1.0)
