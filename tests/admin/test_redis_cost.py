"""Against a private redis-server: a changelist render reads the not-closed index, the page of
circuits it shows and their last hour of history, whatever the number of policies.

Two independent counts: round trips sent by the client (redis-py's socket writes), and what the
server executed (``INFO commandstats``), where one ``EVALSHA`` runs the per-circuit reads inside
the script; the keys each script touches are counted by wrapping redis-py's ``Script``.
"""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.backends.redis_reads import PAGE
from resilience.engine import Policy
from resilience.models import BreakerPolicy
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


def test_changelist_costs_three_redis_round_trips_whatever_the_page_size(
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
    # The not-closed index (one HGETALL), the page's circuits (one script), their last hour
    # (one pipeline of HMGETs: the "last hour" column); the broken circuits the overview lists
    # are on the page already.
    assert small_trips == big_trips == 3
    # Server side: one script call; its per-circuit reads (the slot sets of the capped circuits
    # included) run inside it, not as round trips.
    assert small["cmdstat_evalsha"] == big["cmdstat_evalsha"] == 1
    allowed = {
        "cmdstat_evalsha", "cmdstat_time", "cmdstat_hgetall", "cmdstat_zrange", "cmdstat_hmget"
    }  # fmt: skip
    assert set(big) <= allowed, big
    assert big["cmdstat_hgetall"] == 100 + 1
    # An hour of 1-minute buckets spans at most 2 of a circuit's 120-minute hashes.
    assert small["cmdstat_hmget"] <= 2 * 10 and big["cmdstat_hmget"] <= 2 * 100
    assert big.get("cmdstat_zrange") == 22  # the capped circuits only: 12, 16, ..., 96
    response = client.get(CHANGELIST)
    rows = response.context["cl"].result_list
    expected = [i % 2 == 1 and i >= 10 for i in range(100)]
    assert [row.live.state == "open" for row in rows] == expected
    in_flight = [row.live.get("in_flight") for row in rows]
    assert in_flight == [i % 3 if i >= 10 and i % 4 == 0 else None for i in range(100)]
    assert ">2 / 5</span>" in response.content.decode()  # svc-020


def render(client, url, redis_client, monkeypatch):
    """``(SQL queries, keys of each script, {command: calls} on the server, response)``."""
    from redis.commands.core import Script

    sizes, original = [], Script.__call__

    def counting(self, keys=(), args=(), client=None):
        sizes.append(len(keys))
        return original(self, keys=keys, args=args, client=client)

    redis_client.config_resetstat()
    with monkeypatch.context() as patch, CaptureQueriesContext(connection) as queries:
        patch.setattr(Script, "__call__", counting)
        response = client.get(url)
    assert response.status_code == 200
    assert b"could not read" not in response.content and b"degraded" not in response.content
    stats = redis_client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    calls = {k: n for k, n in calls.items() if k not in ("info", "config")}
    return len(queries), sizes, calls, response


@pytest.mark.slow
def test_a_render_with_5000_policies_reads_a_page_not_the_table(
    redis_client, superuser, client_for, monkeypatch
):
    """The changelist, its overview and the live-state filter with 5,000 policies: no script
    touches more than a page of keys, Redis runs a few hundred commands, and the SQL queries are
    as many as with 10 policies."""
    client = client_for(superuser)
    backend = get_backend()
    opening = Policy(failure_threshold=1)

    def add(first, last):
        BreakerPolicy.objects.bulk_create(
            BreakerPolicy(name=f"svc-{i:05d}", failure_threshold=1) for i in range(first, last)
        )
        for i in range(-(-first // 125) * 125, last, 125):  # every 125th opens: 40 of 5,000
            ticket = backend.acquire(f"svc-{i:05d}", opening)
            backend.record(ticket, opening, False, 1)

    add(0, 10)
    urls = [CHANGELIST, CHANGELIST + "?live=open", CHANGELIST + "?live=closed"]
    for url in urls:
        client.get(url)  # scripts loaded, the index built once
    small = [render(client, url, redis_client, monkeypatch) for url in urls]
    add(10, 5000)
    big = [render(client, url, redis_client, monkeypatch) for url in urls]
    for (small_sql, _, _, _), (sql, sizes, commands, response) in zip(small, big, strict=True):
        assert sql == small_sql  # a constant number of SQL queries
        assert sizes and max(sizes) <= 2 * PAGE  # no script over a page of keys
        # The index, the page's hashes, the overview's 12 broken ones (those not on the page)
        # and their TIME, the page's last hour (at most 2 HMGETs a row); nothing per policy of
        # the table.
        assert commands["hgetall"] <= 1 + PAGE + 12, commands
        assert commands.get("hmget", 0) <= 2 * PAGE, commands
        assert sum(commands.values()) <= 4 * PAGE + 20, commands
    everything, opened, closed = (r[3] for r in big)
    assert everything.context["cl"].result_count == 5000
    assert len(everything.context["cl"].result_list) == 100
    assert opened.context["cl"].result_count == 40
    assert {row.live.state for row in opened.context["cl"].result_list} == {"open"}
    assert closed.context["cl"].result_count == 4960
    assert "open" not in {row.live.state for row in closed.context["cl"].result_list}
    overview = everything.context["overview"]()
    counts = {state: n for state, _, n in overview["counts"]}
    assert counts == {"open": 40, "closed": 4960}
    assert overview["broken_total"] == 40 and len(overview["broken"]) == 12
