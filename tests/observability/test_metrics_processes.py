"""metrics/ scraped over HTTP from two real server processes (gunicorn, one worker each) that
share one private redis-server: the cluster-wide counters agree, the per-process ones do not."""

from __future__ import annotations

import json

import pytest
import requests
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from resilience.models import BreakerPolicy
from tests.support.hangscenario import Gunicorn
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
TOKEN = "metrics-token-0123456789"
POLICIES = {
    # A cap: every call is timed (the histogram then counts every call, not 1 in 8).
    "payments-api": {"max_concurrent_calls": 10, "failure_threshold": 100},
    "fragile": {"failure_threshold": 2, "recovery_timeout": 600},
    "sluggish": {"slow_call_ms": 50, "failure_threshold": 100},
}
SECONDS = "resilience_cluster_call_duration_seconds"


@pytest.fixture
def sites(tmp_path, redis_proc):
    """Two gunicorn masters with one sync worker each: two processes, one Redis, one database.
    The rows exist from the start, so both processes' overviews name the same circuits."""
    for name, fields in POLICIES.items():
        BreakerPolicy.objects.create(name=name, alert_on_open=False, **fields)
    resilience = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "prefix": "metrics", "socket_timeout": 0.5},
        "POLICIES": POLICIES,
        "HEALTH": {"TOKEN": TOKEN},
    }
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.support.metricsite.settings",
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SETTINGS": json.dumps(resilience),
    }
    a = Gunicorn(env, tmp_path / "a.log", workers=1)
    b = Gunicorn(env, tmp_path / "b.log", workers=1)
    with a, b:
        yield a, b


def call(site, circuit, times=1, fail=False, ms=0):
    for _ in range(times):
        params = {"circuit": circuit, "ms": ms, **({"fail": 1} if fail else {})}
        response = requests.get(f"{site.url}/call/", params=params, timeout=10)
        assert response.status_code == 200, response.text
        yield response.headers["X-Outcome"]


def scrape(site):
    response = requests.get(
        f"{site.url}/resilience/metrics/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def cluster(samples):
    """The cluster-wide series only (the per-process ones differ by design)."""
    return {
        key: v
        for key, v in samples.items()
        if key[0].startswith("resilience_cluster_") or key[0] == "resilience_circuit_state"
    }


def get(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_two_processes_agree_on_the_cluster_counters(sites):
    a, b = sites
    assert list(call(a, "payments-api", 3)) == ["success"] * 3
    assert list(call(a, "payments-api", fail=True)) == ["failure"]
    assert list(call(b, "payments-api", 2, ms=30)) == ["success"] * 2
    assert list(call(b, "payments-api", 2, fail=True, ms=30)) == ["failure"] * 2
    assert list(call(a, "sluggish", ms=300)) == ["success"]  # judged failed at 50 ms, meanwhile

    # A scrape sends the scraped process's own counts first: after one scrape of each, any
    # scrape sees every call (no waiting for the other process's background send).
    scrape(a)
    from_b = scrape(b)
    from_a = scrape(a)
    assert cluster(from_a) == cluster(from_b)
    for samples in (from_a, from_b):
        assert get(samples, "resilience_cluster_calls_total", circuit="payments-api",
                   outcome="success") == 5  # fmt: skip
        assert get(samples, "resilience_cluster_calls_total", circuit="payments-api",
                   outcome="failure") == 3  # fmt: skip
        assert get(samples, "resilience_cluster_overdue_calls_total", circuit="sluggish") == 1
        assert get(samples, "resilience_cluster_calls_total", circuit="sluggish",
                   outcome="failure") == 1  # fmt: skip
        # The histogram: every call timed (a cap), buckets cumulative up to the count.
        count = get(samples, f"{SECONDS}_count", circuit="payments-api")
        assert count == get(samples, f"{SECONDS}_bucket", circuit="payments-api", le="+Inf") == 8
        assert get(samples, f"{SECONDS}_sum", circuit="payments-api") >= 4 * 0.030
        assert (
            get(samples, f"{SECONDS}_bucket", circuit="payments-api", le="0.02") <= 4
        )  # b's: 30+ ms
    # This process's counters stay this process's.
    assert get(from_a, "resilience_calls_total", circuit="payments-api", outcome="success") == 3
    assert get(from_b, "resilience_calls_total", circuit="payments-api", outcome="success") == 2

    # b trips a circuit; a's call is then rejected by the shared state.
    assert list(call(b, "fragile", 2, fail=True)) == ["failure"] * 2
    assert list(call(a, "fragile")) == ["rejected"]
    # Without a scrape of a first: its background send (every 5 s) brings its rejection.
    shared = wait_until(
        lambda: get(scrape(b), "resilience_cluster_rejections_total", circuit="fragile") == 1,
        15,
        0.2,
    )
    assert shared, "a's counts never reached the shared totals"
    from_a, from_b = scrape(a), scrape(b)
    assert cluster(from_a) == cluster(from_b)
    for samples in (from_a, from_b):
        assert get(samples, "resilience_cluster_rejections_total", circuit="fragile") == 1
        assert get(samples, "resilience_cluster_calls_total", circuit="fragile",
                   outcome="failure") == 2  # fmt: skip
        assert get(samples, "resilience_circuit_state", circuit="fragile", state="open") == 1
    assert get(from_a, "resilience_rejections_total", circuit="fragile") == 1
    assert get(from_b, "resilience_rejections_total", circuit="fragile") == 0
