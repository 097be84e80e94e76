"""What RedisBackend stores and how: key layout, scripts, the server clock, the outbox, eviction,
and the open cache (rejections answered without asking Redis)."""

from __future__ import annotations

import threading
import time

import redis as redis_py

from resilience.backends.base import OUTBOX_MAX
from resilience.backends.redis import OPEN_CACHE_SHARE, script_source
from resilience.engine import Policy
from tests.backends.contract import fail, succeed
from tests.backends.redis_helpers import (
    make_backend,
)

# --- Redis specifics ----------------------------------------------------------------------------


def test_keys_layout_plain_strings_and_hash_tag(redis_url, clock):
    backend = make_backend(redis_url, clock, prefix="myapp")
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    try:
        fail(backend, "payments-api", Policy(failure_threshold=1))
        assert sorted(client.keys("*")) == [
            "myapp:v1:not-closed",
            "myapp:v1:{payments-api}:outbox",
            "myapp:v1:{payments-api}:state",
        ]
        assert client.hgetall("myapp:v1:not-closed") == {"payments-api": "open"}
        fields = client.hgetall("myapp:v1:{payments-api}:state")
        assert fields["state"] == "open" and fields["generation"] == "1"
        assert all(v.lstrip("-").isdigit() or k in ("state", "epoch") for k, v in fields.items())
        [entry] = client.lrange("myapp:v1:{payments-api}:outbox", 0, -1)
        assert entry.startswith('{"at_ms":') and '"kind":"opened"' in entry
    finally:
        backend.close()
        client.close()


def test_outbox_json_is_byte_for_byte_the_engine_json(redis_backend, redis_url):
    policy = Policy(failure_threshold=0, failure_rate_threshold=33, minimum_calls=3)
    succeed(redis_backend, "rate", policy, times=2)
    [opened] = fail(redis_backend, "rate", policy)
    assert opened.failure_rate == 100 / 3
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    [raw] = client.lrange(redis_backend._keys("rate")[1], 0, -1)
    client.close()
    assert raw == opened.to_json()


def test_every_script_documents_keys_argv_and_return():
    for name in ("acquire", "record", "release", "reset", "snapshot_many", "ack"):
        header = script_source(name).split("\n\n", 1)[0]
        assert "KEYS[1]" in header and "Returns" in header, name
        assert "ARGV" in header, name


def test_server_clock_is_used_without_an_injected_clock(redis_url):
    backend = make_backend(redis_url)
    try:
        policy = Policy(failure_threshold=1, recovery_timeout=30)
        before = time.time_ns() // 1_000_000
        [opened] = fail(backend, "server-time", policy)
        after = time.time_ns() // 1_000_000
        assert before - 1000 <= opened.at_ms <= after + 1000
        ticket = backend.acquire("server-time", policy)
        assert not ticket.admitted and 28_000 < ticket.retry_after_ms <= 30_000
        snap = backend.snapshot("server-time", policy)
        assert snap["state"] == "open" and 28 < snap["retry_after"] <= 30
    finally:
        backend.close()


def test_policy_edits_never_lose_state(redis_backend):
    name = "edited"
    fail(redis_backend, name, Policy(failure_threshold=10), times=6)
    edited = Policy(failure_threshold=8, recovery_timeout=5, version=9)
    assert redis_backend.snapshot(name, edited)["consecutive_failures"] == 6
    assert [t.kind for t in fail(redis_backend, name, edited, times=2)] == ["opened"]


def test_script_flush_is_survived(redis_backend, redis_url):
    policy = Policy(failure_threshold=2)
    fail(redis_backend, "flushed", policy)
    client = redis_py.Redis.from_url(redis_url)
    client.script_flush()
    client.close()
    assert [t.kind for t in fail(redis_backend, "flushed", policy)] == ["opened"]
    assert redis_backend.snapshot("flushed", policy)["state"] == "open"
    assert redis_backend.health()["degraded"] is False


def test_evicted_keys_start_a_fresh_circuit_with_a_new_epoch(redis_backend, redis_url, clock):
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    [first] = fail(redis_backend, "evicted", policy)
    client = redis_py.Redis.from_url(redis_url)
    client.delete(*redis_backend._keys("evicted"))
    client.close()
    clock.advance(2)  # past the refresh bound of the local open cache
    ticket = redis_backend.acquire("evicted", policy)
    assert ticket.admitted and ticket.state == "closed" and ticket.generation == 0
    [second] = redis_backend.record(ticket, policy, False, 1)
    assert second.generation == 1 and second.id != first.id
    assert redis_backend.health()["degraded"] is False


def test_outbox_is_bounded_in_redis(redis_backend, redis_url):
    for _ in range(OUTBOX_MAX + 20):
        redis_backend.reset("bounded", Policy())
    client = redis_py.Redis.from_url(redis_url)
    assert client.llen(redis_backend._keys("bounded")[1]) == OUTBOX_MAX
    client.close()


def test_exactly_one_caller_sees_each_transition_across_threads(redis_url):
    backend = make_backend(redis_url, defer_successes=False)
    policy = Policy(failure_threshold=5, recovery_timeout=60)
    seen = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(20):
            seen.extend(fail(backend, "race", policy))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert [t.kind for t in seen] == ["opened"]
        assert backend.outbox("race") == seen
    finally:
        backend.close()


def test_open_cache_is_dropped_by_a_local_reset(redis_backend):
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    fail(redis_backend, "cached", policy)
    assert not redis_backend.acquire("cached", policy).admitted
    redis_backend.reset("cached", policy)
    assert redis_backend.acquire("cached", policy).admitted


def test_a_reset_elsewhere_is_honoured_within_policy_refresh_seconds(redis_url, clock, settings):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 0.5}
    here, elsewhere = make_backend(redis_url, clock), None
    elsewhere = make_backend(redis_url, clock, prefix=here.prefix)
    policy = Policy(failure_threshold=1, recovery_timeout=60)
    try:
        fail(here, "remote-reset", policy)
        assert not here.acquire("remote-reset", policy).admitted
        elsewhere.reset("remote-reset", policy)
        horizon = 0.5 * OPEN_CACHE_SHARE  # re-asks Redis a little before the 0.5 s bound
        clock.advance(horizon - 0.001)
        assert not here.acquire("remote-reset", policy).admitted  # still cached
        clock.advance(0.001)
        assert here.acquire("remote-reset", policy).admitted
    finally:
        here.close()
        elsewhere.close()
