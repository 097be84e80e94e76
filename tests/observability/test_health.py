"""health/: healthy or degraded for everyone, detail for staff and the bearer token only."""

import json

import pytest
import redis
from django.db import connection

from resilience import breaker
from resilience.backends import get_backend
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.support.redisproc import REDIS_SERVER, RedisProcess

pytestmark = [pytest.mark.urls("tests.support.site_urls"), pytest.mark.usefixtures("breaker_db")]
URL = "/resilience/health/"
TOKEN = "monitoring-token-0123456789"


@pytest.fixture
def token(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "HEALTH": {"TOKEN": TOKEN}}
    return TOKEN


def get(client, **headers):
    response = client.get(URL, headers=headers)
    return response, json.loads(response.content)


def trip(name):
    breaker(name).force_open(reason="test")


def test_anonymous_healthy(client):
    BreakerPolicyFactory(name="payments-api", critical=True)
    response, body = get(client)
    assert response.status_code == 200
    assert body == {"status": "healthy"}
    assert response["Cache-Control"].startswith("max-age=0")
    assert "Authorization" in response["Vary"]


def test_an_open_non_critical_circuit_is_not_degraded(client):
    BreakerPolicyFactory(name="search", critical=False, failure_threshold=1)
    trip("search")
    response, body = get(client)
    assert (response.status_code, body) == (200, {"status": "healthy"})


def test_an_open_critical_circuit_degrades_without_naming_it(client):
    BreakerPolicyFactory(name="payments-api", critical=True)
    trip("payments-api")
    response, body = get(client)
    assert response.status_code == 503
    assert body == {"status": "degraded"}


def test_a_tripped_critical_circuit_degrades(client):
    BreakerPolicyFactory(name="payments-api", critical=True, failure_threshold=1)
    with pytest.raises(ZeroDivisionError), breaker("payments-api"):
        1 / 0
    assert get(client)[1] == {"status": "degraded"}


def test_critical_status_is_configurable(client, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "HEALTH": {"CRITICAL_STATUS": 500}}
    BreakerPolicyFactory(name="payments-api", critical=True)
    trip("payments-api")
    assert get(client)[0].status_code == 500


def test_staff_see_every_circuit(client):
    BreakerPolicyFactory(name="payments-api", critical=True)
    BreakerPolicyFactory(name="search", failure_rate_threshold=50)
    trip("payments-api")
    client.force_login(UserFactory(is_staff=True))
    response, body = get(client)
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["critical_down"] == ["payments-api"]
    assert body["database"] is True
    assert body["backend"] == {"backend": "memory", "degraded": False}
    assert body["circuits"]["payments-api"]["state"] == "forced_open"
    assert body["circuits"]["payments-api"]["critical"] is True
    assert body["circuits"]["search"]["state"] == "closed"


def test_detail_shows_calls_in_flight_and_the_cap_to_the_token_only(client, token):
    BreakerPolicyFactory(name="payments-api", max_concurrent_calls=3)
    BreakerPolicyFactory(name="search")
    with breaker("payments-api"):
        anonymous = get(client)[1]
        circuits = get(client, authorization=f"Bearer {token}")[1]["circuits"]
    assert anonymous == {"status": "healthy"}
    assert circuits["payments-api"]["in_flight"] == 1
    assert circuits["payments-api"]["max_concurrent_calls"] == 3
    assert (circuits["search"]["in_flight"], circuits["search"]["max_concurrent_calls"]) == (
        None,
        0,
    )  # not counted: no cap and no call deadline
    after = get(client, authorization=f"Bearer {token}")[1]["circuits"]["payments-api"]
    assert after["in_flight"] == 0


@pytest.mark.parametrize("staff", [False, True])
def test_non_staff_and_inactive_users_get_no_detail(client, staff):
    BreakerPolicyFactory(name="payments-api")
    client.force_login(UserFactory(is_staff=staff, is_active=not staff))
    assert get(client)[1] == {"status": "healthy"}


def test_bearer_token_gets_detail(client, token):
    BreakerPolicyFactory(name="payments-api")
    body = get(client, authorization=f"Bearer {token}")[1]
    assert set(body["circuits"]) == {"payments-api"}
    assert get(client, authorization=f"bearer {token}")[1]["circuits"]


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN, "Bearer ", f"Bearer {TOKEN}x"],
)
def test_wrong_credentials_get_no_detail(client, token, header):
    BreakerPolicyFactory(name="payments-api")
    assert get(client, authorization=header)[1] == {"status": "healthy"}


def test_no_token_configured_means_no_token_access(client):
    assert get(client, authorization="Bearer None")[1] == {"status": "healthy"}


def test_one_backend_round_trip_for_every_policy(client, monkeypatch, token):
    for i in range(5):
        BreakerPolicyFactory(name=f"circuit-{i}")
    backend = get_backend()
    calls = []
    real = backend.snapshot_many
    monkeypatch.setattr(backend, "snapshot_many", lambda p: calls.append(set(p)) or real(p))
    assert len(get(client, authorization=f"Bearer {token}")[1]["circuits"]) == 5
    assert calls == [{f"circuit-{i}" for i in range(5)}]


def test_an_unreachable_database_degrades_instead_of_failing(client, token):
    BreakerPolicyFactory(name="payments-api")
    with connection.cursor() as cursor:  # a real database error, not a mock
        cursor.execute("ALTER TABLE resilience_breakerpolicy RENAME TO resilience_gone")
    try:
        response, body = get(client, authorization=f"Bearer {token}")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE resilience_gone RENAME TO resilience_breakerpolicy")
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["database"] is False
    assert "resilience_breakerpolicy" not in response.content.decode()


def test_degraded_probes_are_not_errors_nor_mails(client, default_logging, mailoutbox, monkeypatch):
    # A load balancer probes every few seconds; during an outage each probe answers 503. Django
    # would log each at ERROR on django.request and mail ADMINS under its default LOGGING.
    from resilience import metrics
    from resilience.logs import ThrottledLog

    monkeypatch.setattr(metrics, "database_log", ThrottledLog(metrics.logger, 60), raising=False)
    BreakerPolicyFactory(name="payments-api", critical=True)
    trip("payments-api")
    for _ in range(5):
        assert get(client)[0].status_code == 503
    with connection.cursor() as cursor:  # the database unreachable too
        cursor.execute("ALTER TABLE resilience_breakerpolicy RENAME TO resilience_gone")
    try:
        for _ in range(5):
            assert get(client)[0].status_code == 503
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE resilience_gone RENAME TO resilience_breakerpolicy")
    assert default_logging.request_errors() == []
    assert mailoutbox == []
    warnings = [
        r for r in default_logging.caplog.records if "cannot read policies" in r.getMessage()
    ]
    assert len(warnings) == 1  # not one per probe


def test_post_is_not_allowed(client):
    assert client.post(URL).status_code == 405


@pytest.mark.skipif(not REDIS_SERVER, reason="redis-server not installed")
def test_redis_secrets_never_shown_and_an_unreachable_backend_degrades(client, settings, token):
    password = "hunter2-redis-password"
    with RedisProcess() as server:
        redis.Redis(port=server.port).config_set("requirepass", password)
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        settings.RESILIENCE = {
            **settings.RESILIENCE,
            "BACKEND": "resilience.backends.redis.RedisBackend",
            "OPTIONS": {"url": url, "prefix": "health-test", "socket_timeout": 0.2},
        }
        BreakerPolicyFactory(name="payments-api", critical=True, max_concurrent_calls=2)
        with breaker("payments-api"):
            healthy, body = get(client, authorization=f"Bearer {token}")
        assert healthy.status_code == 200
        assert body["backend"]["backend"] == "redis"
        assert body["circuits"]["payments-api"]["in_flight"] == 1  # read from the slot set
        server.stop()
        degraded, body = get(client, authorization=f"Bearer {token}")
    assert degraded.status_code == 503
    assert body["status"] == "degraded"
    assert body["backend"]["degraded"] is True
    for response in (healthy, degraded):
        text = response.content.decode()
        for secret in (password, f":{server.port}", "redis://", "Connection", "Error"):
            assert secret not in text
