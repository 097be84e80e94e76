"""metrics/: Prometheus text that prometheus_client parses, with or without prometheus-client."""

import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from resilience import (
    BulkheadFullError,
    CircuitOpenError,
    breaker,
    circuit_breaker,
    events,
    stats,
)
from resilience.watchdog import watchdog
from tests.factories import BreakerPolicyFactory, UserFactory

pytestmark = [pytest.mark.urls("tests.edges.urls"), pytest.mark.usefixtures("breaker_db")]
URL = "/resilience/metrics/"
TOKEN = "metrics-token-0123456789"


@pytest.fixture
def scrape(client):
    client.force_login(UserFactory(is_staff=True))

    def scrape():
        response = client.get(URL)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        text = response.content.decode()
        return text, {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    return scrape


@pytest.fixture
def traffic(breaker_db):
    """payments-api: one success, two failures (opens it), one rejection; search: closed."""
    BreakerPolicyFactory(name="payments-api", failure_threshold=2, critical=True)
    BreakerPolicyFactory(name="search")

    @circuit_breaker("payments-api")
    def charge(fail):
        if fail:
            raise ConnectionError("down")
        return "ok"

    charge(False)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge(True)
    with pytest.raises(CircuitOpenError):
        charge(False)
    assert events.flush(timeout=10)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.usefixtures("traffic")
def test_state_calls_rejections_transitions_and_backend(scrape):
    text, samples = scrape()
    assert value(samples, "resilience_circuit_state", circuit="payments-api", state="open") == 1
    assert value(samples, "resilience_circuit_state", circuit="payments-api", state="closed") == 0
    assert value(samples, "resilience_circuit_state", circuit="search", state="closed") == 1
    assert value(samples, "resilience_circuit_critical", circuit="payments-api") == 1
    assert value(samples, "resilience_calls_total", circuit="payments-api", outcome="success") >= 1
    assert value(samples, "resilience_calls_total", circuit="payments-api", outcome="failure") >= 2
    assert value(samples, "resilience_rejections_total", circuit="payments-api") >= 1
    assert (
        value(samples, "resilience_transitions_total", circuit="payments-api", kind="opened") == 1
    )
    assert value(samples, "resilience_backend_degraded") == 0
    assert value(samples, "resilience_backend_errors_total") == 0
    assert "# TYPE resilience_calls_total counter" in text


@pytest.mark.usefixtures("traffic")
def test_counters_grow_and_forced_open_is_a_state(scrape):
    before = value(scrape()[1], "resilience_rejections_total", circuit="payments-api")
    with pytest.raises(CircuitOpenError), breaker("payments-api"):
        pass
    breaker("search").force_open(reason="maintenance")
    samples = scrape()[1]
    assert value(samples, "resilience_rejections_total", circuit="payments-api") == before + 1
    assert value(samples, "resilience_circuit_state", circuit="search", state="forced_open") == 1
    assert value(samples, "resilience_transitions_total", circuit="search", kind="forced_open") == 1


@pytest.mark.usefixtures("traffic")
def test_plain_text_without_prometheus_client_is_the_same(scrape, monkeypatch):
    with_client = scrape()[1]
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now raises ImportError
    text, without = scrape()
    assert without == with_client
    assert "# TYPE resilience_circuit_state gauge" in text


def test_bulkhead_refusals_overdue_calls_and_calls_in_flight(scrape, clock):
    BreakerPolicyFactory(name="capped", max_concurrent_calls=1, slow_call_ms=1000)
    BreakerPolicyFactory(name="watched", max_concurrent_calls=1, mode="monitor")
    BreakerPolicyFactory(name="plain")
    breaker("plain").snapshot()
    with breaker("capped"):
        with pytest.raises(BulkheadFullError), breaker("capped"):
            pass
        clock.advance(2)  # past slow_call_ms: judged a failure while still running
        watchdog.check()  # (or its own thread, which also looks at least once a second)
        wait_for(lambda: stats.snapshot()["capped"]["overdue"] == 1)
        with breaker("watched"), breaker("watched"):  # the second is over the cap, and runs
            text, samples = scrape()
    assert value(samples, "resilience_bulkhead_rejections_total", circuit="capped") == 1
    assert value(samples, "resilience_rejections_total", circuit="capped") == 0  # apart
    assert value(samples, "resilience_overdue_calls_total", circuit="capped") == 1
    assert value(samples, "resilience_calls_total", circuit="capped", outcome="failure") == 1
    assert value(samples, "resilience_bulkhead_over_cap_total", circuit="watched") == 1
    assert value(samples, "resilience_bulkhead_rejections_total", circuit="watched") == 0
    assert value(samples, "resilience_circuit_in_flight", circuit="capped") == 1
    assert value(samples, "resilience_circuit_in_flight", circuit="watched") == 2
    assert value(samples, "resilience_circuit_max_concurrent_calls", circuit="capped") == 1
    # Only circuits that count their calls have these series (0 from the start).
    assert value(samples, "resilience_overdue_calls_total", circuit="watched") == 0
    for series in ("circuit_in_flight", "circuit_max_concurrent_calls", "overdue_calls_total",
                   "bulkhead_rejections_total", "bulkhead_over_cap_total"):  # fmt: skip
        assert f'resilience_{series}{{circuit="plain"}}' not in text
    assert value(samples, "resilience_rejections_total", circuit="plain") == 0
    assert "# TYPE resilience_bulkhead_rejections_total counter" in text
    assert "# TYPE resilience_circuit_in_flight gauge" in text
    after = scrape()[1]
    assert value(after, "resilience_circuit_in_flight", circuit="capped") == 0
    assert value(after, "resilience_calls_total", circuit="capped", outcome="failure") == 1


def test_only_staff_and_the_bearer_token_may_scrape(client, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "HEALTH": {"TOKEN": TOKEN}}
    BreakerPolicyFactory(name="search")
    assert client.get(URL).status_code == 403
    assert client.get(URL, headers={"authorization": "Bearer nope"}).status_code == 403
    client.force_login(UserFactory(is_staff=False))
    assert client.get(URL).status_code == 403
    response = client.get(URL, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert (
        'resilience_circuit_state{circuit="search",state="closed"} 1.0' in response.content.decode()
    )
