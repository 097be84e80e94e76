"""Round trips and Redis commands per call: what each path of RedisBackend costs."""

from __future__ import annotations

import redis as redis_py

from resilience.clock import ManualClock
from resilience.engine import Policy
from tests.backends.contract import fail, succeed
from tests.backends.redis_helpers import (
    command_calls,
    cost,
    make_backend,
)

# --- cost: round trips and commands per call ------------------------------------------------------


def script_sizes(monkeypatch):
    """The number of keys of every script the backends of this test run (appended to)."""
    from redis.commands.core import Script

    sizes, original = [], Script.__call__

    def counting(self, keys=(), args=(), client=None):
        sizes.append(len(keys))
        return original(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(Script, "__call__", counting)
    return sizes


def test_not_closed_index_is_rebuilt_a_page_per_script_when_lost(redis_proc, monkeypatch):
    from resilience.backends.redis_reads import PAGE

    clock = ManualClock()
    backend = make_backend(redis_proc.url, clock)
    neighbour = make_backend(redis_proc.url, clock)  # another prefix: not in this index
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_threshold=1, recovery_timeout=5)
    policies = {f"svc-{i:03d}": policy for i in range(2 * PAGE + 30)}
    try:
        for i, name in enumerate(policies):
            (fail if i % 3 == 0 else succeed)(backend, name, policy)
        fail(neighbour, "elsewhere", policy)
        expected = {name: "open" for i, name in enumerate(policies) if i % 3 == 0}
        assert backend.not_closed() == expected
        sizes = script_sizes(monkeypatch)
        before = command_calls(client)
        assert client.delete(backend._index_key) == 1  # lost (evicted, deleted by hand)
        assert backend.not_closed() == expected  # rebuilt from the circuits
        assert sizes == [PAGE + 1, PAGE + 1, 31]  # one script per page of circuits
        assert command_calls(client)["hget"] - before.get("hget", 0) == len(policies)
        sizes.clear()
        assert backend.not_closed() == expected  # complete again: one HGETALL
        assert sizes == []
        # A snapshot of every circuit runs one script per page, never one over the table.
        assert len(backend.snapshot_many(policies)) == len(policies)
        assert sizes == [2 * PAGE, 2 * PAGE, 60]
        # A circuit opened while the index is gone is found by the rebuild too.
        client.delete(backend._index_key)
        fail(backend, "svc-001", policy)
        assert backend.not_closed() == {**expected, "svc-001": "open"}
        assert neighbour.not_closed() == {"elsewhere": "open"}
    finally:
        backend.close()
        neighbour.close()
        client.close()


def per_call(calls, **commands):
    return {name: n * calls for name, n in commands.items()}


def test_commands_per_call(redis_proc, settings, monkeypatch):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}  # no background flush meanwhile
    clock = ManualClock()
    backend = make_backend(redis_proc.url, clock)
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    ok, bad = Policy(), Policy(failure_threshold=1000)
    tripping = Policy(failure_threshold=3, recovery_timeout=60)
    try:
        # Connection set up, every script loaded (EVALSHA, NOSCRIPT, SCRIPT LOAD) and each
        # circuit's first call (which stores its epoch) made first.
        succeed(backend, "warm", ok, times=2)
        fail(backend, "warm", ok)
        backend.snapshot_many({"warm": ok, "warm2": ok})  # one circuit needs no script
        succeed(backend, "ok", ok)
        fail(backend, "bad", bad)
        backend.flush()
        calls = 100
        # A closed success: one HMGET; the success waits to ride along with a later script.
        assert cost(client, lambda: succeed(backend, "ok", ok, times=calls), monkeypatch) == (
            calls,
            per_call(calls, hmget=1),
        )
        # A failure: the HMGET, then the record script (the time, one read, one write).
        assert cost(client, lambda: fail(backend, "bad", bad, times=calls), monkeypatch) == (
            2 * calls,
            per_call(calls, hmget=2, evalsha=1, hset=1),
        )
        # Opened by this process: later calls are answered from its cache.
        fail(backend, "open", tripping, times=3)
        assert cost(client, lambda: fail(backend, "open", tripping, times=calls), monkeypatch) == (
            0,
            {},
        )
        # The deferred successes: one script call, which applies them all.
        assert cost(client, backend.flush, monkeypatch) == (
            1,
            {"evalsha": 1, "hmget": 1, "hset": 1},
        )
        immediate = make_backend(redis_proc.url, clock, defer_successes=False)
        succeed(immediate, "warm", ok)
        fail(immediate, "warm", ok)
        succeed(immediate, "ok2", ok)
        assert cost(client, lambda: succeed(immediate, "ok2", ok, times=calls), monkeypatch) == (
            2 * calls,
            per_call(calls, hmget=2, evalsha=1, hset=1),
        )
        immediate.close()
        policies = {f"page-{i}": ok for i in range(100)}
        assert cost(client, lambda: backend.snapshot_many(policies), monkeypatch) == (
            1,
            {"evalsha": 1, "time": 1, "hgetall": 100},
        )
        assert cost(client, lambda: backend.snapshot("ok", ok), monkeypatch) == (
            1,
            {"hgetall": 1},  # and TIME in the same round trip without an injected clock
        )
    finally:
        backend.close()
        client.close()


def test_rate_rule_ok_path_costs_one_round_trip(redis_proc, settings, monkeypatch):
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}
    backend = make_backend(redis_proc.url, ManualClock())
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_rate_threshold=50)
    try:
        succeed(backend, "rated", policy)  # the circuit's first call stores its epoch
        trips, _ = cost(client, lambda: succeed(backend, "rated", policy, times=50), monkeypatch)
        assert trips == 50  # the HMGETs; the background thread sends the successes
        backend.flush()
        assert backend.snapshot("rated", policy)["calls_in_window"] == 51
    finally:
        backend.close()
        client.close()


def test_rate_rule_ok_path_costs_one_round_trip_with_a_cap_too(redis_proc, settings, monkeypatch):
    # A capped (tracked) circuit admits through the acquire script, not the HMGET that tells an
    # untracked one whether its window holds failures: its successes under a rate rule were
    # then never deferred, and each cost the caller a record script of its own (2 round trips).
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 60}
    backend = make_backend(redis_proc.url, ManualClock())
    client = redis_py.Redis.from_url(redis_proc.url, decode_responses=True)
    policy = Policy(failure_rate_threshold=50, max_concurrent_calls=3)

    def calls(times):
        for _ in range(times):
            ticket = backend.acquire("rated", policy)
            assert ticket.admitted
            backend.record(ticket, policy, True, 1)
            backend.return_slot(ticket, policy)

    try:
        calls(1)  # the circuit's first call stores its epoch
        trips, _ = cost(client, lambda: calls(50), monkeypatch)
        assert trips == 50  # the acquire scripts; the background thread sends the successes
        backend.flush()
        snap = backend.snapshot("rated", policy)
        assert (snap["calls_in_window"], snap["in_flight"]) == (51, 0)
    finally:
        backend.close()
        client.close()
