"""Configuring RedisBackend: URLs, ACL users, options, redaction, get_backend, Sentinel and
Cluster."""

from __future__ import annotations

import pytest
import redis as redis_py

from resilience.backends.redis import RedisBackend
from resilience.clock import ManualClock
from resilience.engine import Policy
from resilience.sanitize import describe_error, redact_url
from tests.backends.contract import fail, succeed
from tests.backends.redis_helpers import make_backend
from tests.support.waiting import wait_until

# --- configuration ------------------------------------------------------------------------------


def test_acl_user_and_password_in_the_url(redis_proc):
    admin = redis_py.Redis.from_url(redis_proc.url)
    # Exactly the rules docs/redis.md recommends.
    admin.execute_command(
        "ACL", "SETUSER", "breaker", "on", ">s3cr3t-pw", "~resil:*",
        "+@scripting", "+@hash", "+@list", "+@sortedset", "+ping", "+time", "+scan",
    )  # fmt: skip
    admin.close()
    url = f"redis://breaker:s3cr3t-pw@127.0.0.1:{redis_proc.port}/0"
    clock = ManualClock()
    backend = make_backend(url, clock, prefix="resil")
    try:
        policy = Policy(failure_threshold=1, recovery_timeout=1)
        succeed(backend, "acl", policy, times=2)
        assert [t.kind for t in fail(backend, "acl", policy)] == ["opened"]
        assert backend.not_closed() == {"acl": "open"}  # the index built by SCAN
        clock.advance(1)
        trial = backend.acquire("acl", policy)
        backend.release(trial, policy)
        [reset] = backend.reset("acl", policy)
        assert len(backend.outbox("acl")) == 3
        backend.ack("acl", [reset.id])
        assert backend.snapshot_many({"acl": policy})["acl"]["state"] == "closed"
        health = backend.health()
        assert health["degraded"] is False, health["reason"]
        assert "s3cr3t-pw" not in str(health)
    finally:
        backend.close()
    wrong = make_backend(url.replace("s3cr3t-pw", "wrong-pw"), ManualClock(), prefix="resil")
    try:
        assert wrong.acquire("acl", Policy()).admitted  # local fallback, no exception
        health = wrong.health()
        assert health["degraded"] and "wrong-pw" not in str(health)
    finally:
        wrong.close()


def test_missing_redis_py_is_an_improperly_configured_with_the_pip_command():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from django.core.exceptions import ImproperlyConfigured\n"
        "try:\n    import resilience.backends.redis\n"
        "except ImproperlyConfigured as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install django-resilience[redis]" in out.stdout, out.stderr


def test_unknown_options_fail_at_construction():
    with pytest.raises(TypeError):
        RedisBackend(url="redis://127.0.0.1:1/0", no_such_option=1)


@pytest.mark.parametrize("prefix", ["", "a{b", "x}"])
def test_prefix_must_not_break_the_hash_tag(prefix):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        RedisBackend(url="redis://127.0.0.1:1/0", prefix=prefix)


def test_redaction():
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:[redacted]@h:1/0"
    assert redact_url("rediss://h:1/0") == "rediss://h:1/0"
    assert "pw" not in describe_error(ValueError("boom redis://u:pw@h:1/0"))
    assert "hunter2" not in describe_error(ValueError("x hunter2 y"), secrets=("hunter2",))


def test_get_backend_builds_the_redis_backend(settings, redis_url):
    from resilience.backends import get_backend

    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "prefix": "configured", "socket_timeout": 0.2},
    }
    backend = get_backend()
    assert isinstance(backend, RedisBackend) and backend.socket_timeout == 0.2
    assert backend.acquire("via-settings", Policy()).admitted


# --- Sentinel -----------------------------------------------------------------------------------


def test_sentinel_discovers_the_master(redis_proc):
    from tests.support.redisproc import RedisProcess

    with RedisProcess(sentinel_for=("breakers", redis_proc)) as sentinel:
        backend = RedisBackend(
            clock=ManualClock(),
            url="redis://ignored-host/0",
            prefix="sentinel",
            socket_timeout=2.0,
            sentinels=[(sentinel.host, sentinel.port)],
            service_name="breakers",
        )
        try:
            assert "sentinel:breakers@127.0.0.1" in backend.health()["location"]
            [opened] = fail(backend, "via-sentinel", Policy(failure_threshold=1))
            assert opened.kind == "opened"
            direct = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
            assert direct.hget("sentinel:v1:{via-sentinel}:state", "state") == "open"
            direct.close()
            assert backend.health()["degraded"] is False
        finally:
            backend.close()


def test_sentinel_unreachable_degrades_without_raising(settings):
    settings.RESILIENCE = {"ON_BACKEND_ERROR": "deny"}
    from tests.support.redisproc import free_port

    backend = RedisBackend(
        clock=ManualClock(),
        sentinels=[f"127.0.0.1:{free_port()}"],
        service_name="nowhere",
        reprobe_interval=30,
    )
    try:
        ticket = backend.acquire("no-sentinel", Policy())
        assert not ticket.admitted and ticket.retry_after_ms == 30_000
        assert backend.health()["degraded"]
    finally:
        backend.close()


# --- Cluster ------------------------------------------------------------------------------------


@pytest.fixture
def redis_cluster():
    """Three private masters joined into a Redis Cluster with redis-cli."""
    import shutil
    import subprocess

    from tests.support.redisproc import RedisProcess

    cli = shutil.which("redis-cli")
    if not cli:
        pytest.skip("redis-cli is not installed")
    cluster_args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
    nodes = [RedisProcess(extra_args=cluster_args) for _ in range(3)]
    try:
        for node in nodes:
            node.start()
        subprocess.run(  # noqa: S603
            [cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes]]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        # Every node must have learnt the whole slot map by gossip, not just the first one.
        for node in nodes:
            client = redis_py.Redis.from_url(node.url, decode_responses=True)
            assert wait_until(lambda c=client: c.cluster("info")["cluster_state"] == "ok", 30)
            client.close()
        yield nodes
    finally:
        for node in nodes:
            node.close()


@pytest.mark.slow
def test_cluster_keeps_each_circuit_in_one_slot(redis_cluster):
    from redis.cluster import RedisCluster

    url = redis_cluster[0].url
    backend = RedisBackend(clock=ManualClock(), url=url, cluster=True, socket_timeout=2.0)
    policies = {f"svc-{i}": Policy(failure_threshold=1) for i in range(30)}
    try:
        for name, policy in policies.items():
            assert [t.kind for t in fail(backend, name, policy)] == ["opened"]
        assert {s["state"] for s in backend.snapshot_many(policies).values()} == {"open"}
        client = RedisCluster.from_url(url)
        slots = {client.keyslot(key) for name in policies for key in backend._keys(name)}
        assert len(slots) > 3  # the page really spans the cluster
        for name in policies:
            state, outbox, bulkhead = backend._keys(name)  # no index key in Cluster
            assert client.keyslot(state) == client.keyslot(outbox) == client.keyslot(bulkhead)
        # The not-closed index lives in another slot than the circuits: the client that
        # receives a transition updates it; a lost index is rebuilt node by node.
        assert backend.not_closed() == {name: "open" for name in policies}
        [reset] = backend.reset("svc-3", policies["svc-3"])
        expected = {name: "open" for name in policies if name != "svc-3"}
        assert backend.not_closed() == expected
        client.delete(backend._index_key)
        client.close()
        assert backend.not_closed() == expected
        assert [t.kind for t in backend.outbox("svc-3")] == ["opened", "reset"]
        backend.ack("svc-3", [reset.id])
        assert [t.kind for t in backend.outbox("svc-3")] == ["opened"]
        assert backend.health()["degraded"] is False
    finally:
        backend.close()
