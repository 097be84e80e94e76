"""Against a private redis-server: the changelist reads a page of 100 circuits in one round trip.

Two independent counts: round trips sent by the client (redis-py's socket writes), and what the
server executed (``INFO commandstats``), where one ``EVALSHA`` runs the per-circuit reads inside
the script.
"""

import uuid

import pytest

from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resilience/breakerpolicy/"
IGNORED = {"cmdstat_info", "cmdstat_config"}  # the measurement itself


@pytest.fixture
def redis_client(redis_server, settings):
    redis = pytest.importorskip("redis")
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {
            "url": redis_server.url,
            "prefix": f"admin{uuid.uuid4().hex[:8]}",
            "socket_timeout": 2.0,  # a loaded machine must not trigger the degraded mode
        },
    }
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def commands_for(client, redis_client, monkeypatch):
    """``(round trips, {command: calls})`` of one changelist request."""
    from redis.connection import AbstractConnection

    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    redis_client.config_resetstat()
    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counting)
        response = client.get(CHANGELIST)
    stats = redis_client.info("commandstats")
    assert response.status_code == 200
    assert b"could not read" not in response.content and b"degraded" not in response.content
    calls = {name: value["calls"] for name, value in stats.items()}
    return len(sent), {name: n for name, n in calls.items() if name.split("|")[0] not in IGNORED}


def test_changelist_costs_one_redis_round_trip_whatever_the_page_size(
    redis_client, superuser, client_for, trip, monkeypatch
):
    assert type(get_backend()).__name__ == "RedisBackend"
    client = client_for(superuser)
    for i in range(10):
        BreakerPolicyFactory(name=f"svc-{i:03d}", failure_threshold=1)
    client.get(CHANGELIST)  # scripts loaded once per process, not per page
    small_trips, small = commands_for(client, redis_client, monkeypatch)
    backend = get_backend()
    for i in range(10, 100):
        # Every fourth circuit has a bulkhead with i % 3 calls in flight (from this process:
        # the slots live in Redis, so any process reads the same count).
        capped = i % 4 == 0
        policy = BreakerPolicyFactory(
            name=f"svc-{i:03d}", failure_threshold=1, max_concurrent_calls=5 if capped else 0
        )
        if i % 2:
            trip(policy)
        for _ in range(i % 3 if capped else 0):
            assert backend.acquire(policy.name, policy_from_values(policy)).slot is not None
    big_trips, big = commands_for(client, redis_client, monkeypatch)
    assert small_trips == big_trips == 1
    # Server side: one script call; its per-circuit reads (the slot sets of the capped circuits
    # included) run inside it, not as round trips.
    assert small["cmdstat_evalsha"] == big["cmdstat_evalsha"] == 1
    allowed = {"cmdstat_evalsha", "cmdstat_time", "cmdstat_hgetall", "cmdstat_zrange"}
    assert set(big) <= allowed, big
    assert big.get("cmdstat_zrange") == 22  # the capped circuits only: 12, 16, ..., 96
    response = client.get(CHANGELIST)
    rows = response.context["cl"].result_list
    expected = [i % 2 == 1 and i >= 10 for i in range(100)]
    assert [row.live.state == "open" for row in rows] == expected
    in_flight = [row.live.get("in_flight") for row in rows]
    assert in_flight == [i % 3 if i >= 10 and i % 4 == 0 else None for i in range(100)]
    assert ">2 / 5</span>" in response.content.decode()  # svc-020
