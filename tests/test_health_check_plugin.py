"""The django-health-check plugin through django-health-check's own view: a critical circuit
down fails it, another one warns, an unreachable backend fails it."""

import pytest
from django.urls import path

from resilience import breaker
from tests.factories import BreakerPolicyFactory

pytest.importorskip("health_check.base", reason="django-health-check 4 needs Django 5.2+")
from health_check.views import HealthCheckView  # noqa: E402

PLUGIN = "resilience.health_check.CircuitBreakers"
urlpatterns = [
    path("ht/", HealthCheckView.as_view(checks=[PLUGIN])),
    path("ht/names/", HealthCheckView.as_view(checks=[(PLUGIN, {"show_names": True})])),
    path("ht/lb/", HealthCheckView.as_view(checks=[(PLUGIN, {"critical_only": True})])),
]
# Tripping a circuit stores events from the writer thread: outside a test transaction.
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]


def health(client, url="/ht/"):
    response = client.get(url, {"format": "json"})
    [(check, status)] = response.json().items()
    assert check.startswith("CircuitBreakers(")
    return response.status_code, status


def trip(name):
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker(name):
            raise ConnectionError("down")


@pytest.fixture
def circuits(memory_backend):
    BreakerPolicyFactory(name="payments-api", critical=True, failure_threshold=2)
    BreakerPolicyFactory(name="search", failure_threshold=2)


@pytest.mark.usefixtures("circuits")
def test_all_closed_is_ok(client):
    assert health(client) == (200, "OK")


@pytest.mark.usefixtures("circuits")
def test_a_non_critical_circuit_open_warns(client):
    trip("search")
    code, status = health(client)
    assert status.startswith("Warning: 1 non-critical circuit(s) open")
    assert "search" not in status  # names only with show_names
    assert code == 500  # django-health-check 4 fails on warnings too
    assert health(client, "/ht/names/")[1].endswith(": search")
    assert health(client, "/ht/lb/") == (200, "OK")  # critical_only: not its business


@pytest.mark.usefixtures("circuits")
def test_a_critical_circuit_open_fails(client):
    trip("search")
    trip("payments-api")
    code, status = health(client, "/ht/names/")
    assert code == 500
    assert status == (
        "Unavailable: 1 critical circuit(s) open, half-open or forced open: payments-api"
    )
    assert health(client, "/ht/lb/")[1].startswith("Unavailable: 1 critical circuit(s)")


@pytest.mark.usefixtures("circuits")
def test_a_forced_open_critical_circuit_fails(client):
    breaker("payments-api").force_open(reason="maintenance")
    assert health(client, "/ht/lb/")[0] == 500


def test_an_unreachable_backend_fails(client, settings, redis_proc):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "prefix": "hc-plugin", "socket_timeout": 0.2},
    }
    BreakerPolicyFactory(name="search")
    assert health(client) == (200, "OK")
    redis_proc.stop()
    assert health(client) == (500, "Unavailable: the circuit-state backend is unreachable")
