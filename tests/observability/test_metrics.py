"""metrics/: prometheus-client's exposition of every circuit, as Prometheus parses it."""

import contextlib

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from resilience import (
    BulkheadFullError,
    CircuitOpenError,
    breaker,
    circuit_breaker,
    events,
    stats,
)
from resilience.prometheus import ResilienceCollector
from resilience.watchdog import watchdog
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.urls("tests.support.site_urls"), pytest.mark.usefixtures("breaker_db")]
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


FAMILIES = {  # name -> type: what dashboards and alerts rely on (docs/operations.md)
    "resilience_circuit_state": "gauge",
    "resilience_circuit_consecutive_failures": "gauge",
    "resilience_circuit_critical": "gauge",
    "resilience_circuit_in_flight": "gauge",
    "resilience_circuit_max_concurrent_calls": "gauge",
    "resilience_calls": "counter",
    "resilience_rejections": "counter",
    "resilience_bulkhead_rejections": "counter",
    "resilience_bulkhead_over_cap": "counter",
    "resilience_overdue_calls": "counter",
    "resilience_cluster_calls": "counter",
    "resilience_cluster_slow_calls": "counter",
    "resilience_cluster_rejections": "counter",
    "resilience_cluster_bulkhead_rejections": "counter",
    "resilience_cluster_overdue_calls": "counter",
    "resilience_cluster_call_duration_seconds": "histogram",
    "resilience_transitions": "counter",
    "resilience_backend_degraded": "gauge",
    "resilience_backend_errors": "counter",
    "resilience_metrics_aggregated_circuits": "gauge",
}


@pytest.mark.usefixtures("traffic")
def test_the_family_names_and_types_are_stable(client):
    client.force_login(UserFactory(is_staff=True))
    text = client.get(URL).content.decode()
    found = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert found == FAMILIES
    assert {m.name: m.type for m in ResilienceCollector().describe()} == FAMILIES


@pytest.mark.usefixtures("traffic")
def test_openmetrics_when_the_scraper_asks_for_it(client, scrape):
    client.force_login(UserFactory(is_staff=True))
    response = client.get(URL, headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in openmetrics_families(text)
        for s in family.samples
    }
    plain = scrape()[1]
    key = ("resilience_calls_total", (("circuit", "payments-api"), ("outcome", "failure")))
    assert samples[key] == plain[key] >= 2


@pytest.mark.usefixtures("traffic")
def test_scrapes_never_touch_the_default_registry(scrape):
    before = set(REGISTRY._names_to_collectors)
    scrape()
    assert set(REGISTRY._names_to_collectors) == before
    assert not [n for n in before if n.startswith("resilience_")]


@pytest.mark.usefixtures("traffic")
def test_the_collector_can_be_registered_in_a_registry_of_your_own():
    registry = CollectorRegistry()  # auto_describe, like prometheus_client.REGISTRY
    registry.register(ResilienceCollector())
    text = generate_latest(registry).decode()
    assert 'resilience_circuit_state{circuit="payments-api",state="open"} 1.0' in text
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(ResilienceCollector())


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
        assert wait_until(lambda: stats.snapshot()["capped"]["overdue"] == 1, 10)
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


def test_circuits_past_the_cap_are_summed_as_other(scrape, settings):
    """Per-host circuits give way to named ones; past ``MAX_CIRCUITS`` every value is summed
    under ``circuit="_other"``, so the series stay bounded however many hosts are called."""
    settings.RESILIENCE = {**settings.RESILIENCE, "METRICS": {"MAX_CIRCUITS": 3}}
    for name in ("payments-api", "http:a.example", "search", "http:b.example", "zeta"):
        BreakerPolicyFactory(name=name, failure_threshold=1)
    with pytest.raises(ConnectionError), breaker("http:a.example"):
        raise ConnectionError("down")
    for _ in range(2):
        with breaker("http:b.example"):
            pass
    with breaker("zeta"):
        pass
    assert events.flush(timeout=10)
    text, samples = scrape()
    circuits = {s.labels.get("circuit") for f in text_string_to_metric_families(text)
                for s in f.samples} - {None}  # fmt: skip
    assert circuits == {"payments-api", "search", "zeta", "_other"}
    # This process's counters also hold circuits of earlier tests (without a row): in _other.
    process = stats.snapshot()
    other = set(process) - {"payments-api", "search", "zeta"}
    assert {"http:a.example", "http:b.example"} <= other
    assert value(samples, "resilience_metrics_aggregated_circuits") == len(other)
    # A state gauge of _other counts its circuits in that state (those with a policy row).
    assert value(samples, "resilience_circuit_state", circuit="_other", state="open") == 1
    assert value(samples, "resilience_circuit_state", circuit="_other", state="closed") == 1
    for outcome in ("success", "failure"):
        total = sum(process[name][outcome] for name in other)
        assert value(samples, "resilience_calls_total", circuit="_other", outcome=outcome) == total
    assert value(samples, "resilience_calls_total", circuit="zeta", outcome="success") == 1
    assert value(samples, "resilience_transitions_total", circuit="_other", kind="opened") == 1
    settings.RESILIENCE = {**settings.RESILIENCE, "METRICS": {"MAX_CIRCUITS": 100_000}}
    assert value(scrape()[1], "resilience_metrics_aggregated_circuits") == 0


def test_an_unreadable_event_table_leaves_the_rest_of_the_scrape(scrape):
    from django.db import connection

    BreakerPolicyFactory(name="search")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE resilience_circuitevent RENAME TO resilience_gone")
    try:
        text, samples = scrape()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE resilience_gone RENAME TO resilience_circuitevent")
    assert value(samples, "resilience_circuit_state", circuit="search", state="closed") == 1
    assert "resilience_transitions_total{" not in text


def test_the_cluster_counters_and_histogram_come_from_the_totals(scrape, clock):
    """Timed calls (a cap makes every call timed) of known durations on the manual clock: the
    histogram's buckets are cumulative, its count is the calls timed, its sum their time."""
    from resilience.backends import get_backend

    BreakerPolicyFactory(name="timed", max_concurrent_calls=10, failure_threshold=100)
    for i, ms in enumerate([0, 4, 40, 40, 250, 2500]):
        with contextlib.suppress(ConnectionError), breaker("timed"):
            clock.advance(ms / 1000)
            if i == 2:
                raise ConnectionError("down")
    text, samples = scrape()
    seconds = "resilience_cluster_call_duration_seconds"
    buckets = {
        dict(labels)["le"]: n
        for (name, labels), n in samples.items()
        if name == f"{seconds}_bucket" and dict(labels)["circuit"] == "timed"
    }
    assert buckets["0.005"] == 2  # 0 and 4 ms
    assert buckets["0.05"] == 4
    assert buckets["0.3"] == 5
    assert buckets["3.0"] == buckets["+Inf"] == 6
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts)  # cumulative
    assert value(samples, f"{seconds}_count", circuit="timed") == 6
    assert value(samples, f"{seconds}_sum", circuit="timed") == pytest.approx(2.834)
    assert value(samples, "resilience_cluster_calls_total", circuit="timed", outcome="success") == 5
    assert value(samples, "resilience_cluster_calls_total", circuit="timed", outcome="failure") == 1
    assert value(samples, "resilience_cluster_overdue_calls_total", circuit="timed") == 0
    totals = get_backend().totals(["timed"])["timed"]
    assert totals["calls"] == 6 and totals["latency"]["counts"][-1] == 0
    assert f"# TYPE {seconds} histogram" in text
