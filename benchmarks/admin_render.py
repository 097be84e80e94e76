"""The policy changelist: render time, SQL queries and Redis round trips for 10 to 1,000 rows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from benchmarks import harness
from benchmarks.redis_cost import RoundTrips, commandstats

URL = "/admin/resilience/breakerpolicy/"
PREFIX = "admin-"


def _grow_to(count: int, url: str | None) -> None:
    """Policies ``admin-00000``... up to ``count`` rows; every tenth circuit is called (again:
    the other backend's run may have created the rows), every fiftieth is open, so the live
    columns show real state."""
    from resilience import CircuitOpenError, circuit_breaker
    from resilience.models import BreakerPolicy

    names = [f"{PREFIX}{i:05d}" for i in range(count)]
    # Rows past ``count`` are left by the other backend's run (which reached a larger size):
    # without this, every size of the second run measured the largest table.
    BreakerPolicy.objects.filter(name__startswith=PREFIX, name__gte=f"{PREFIX}{count:05d}").delete()
    existing = set(
        BreakerPolicy.objects.filter(name__startswith=PREFIX).values_list("name", flat=True)
    )
    new = [n for n in names if n not in existing]
    BreakerPolicy.objects.bulk_create(
        [
            BreakerPolicy(
                name=n, failure_threshold=1, recovery_timeout=3600.0, max_recovery_timeout=3600.0
            )
            for n in new
        ],
        batch_size=500,
    )
    for i, name in enumerate(names):
        if i % 10:
            continue
        failing = i % 50 == 0

        def call(failing: bool = failing) -> None:
            if failing:
                raise ConnectionError("down")

        try:
            circuit_breaker(name)(call)()
        except (ConnectionError, CircuitOpenError):  # opened now, or by the previous size
            pass


def _client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench-admin").first()
    if user is None:
        user = user_model.objects.create_superuser("bench-admin", "admin@example.com", "x")
    client = Client()
    client.force_login(user)
    return client


def _page_size() -> int:
    from django.contrib import admin

    from resilience.models import BreakerPolicy

    return admin.site._registry[BreakerPolicy].list_per_page


@contextlib.contextmanager
def script_keys() -> Iterator[list[int]]:
    """The number of keys of every Lua script this process runs meanwhile (redis-py's
    ``Script``: every script of the Redis backend goes through it)."""
    from redis.commands.core import Script

    sizes: list[int] = []
    original = Script.__call__

    def counting(self: Any, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        sizes.append(len(keys))
        return original(self, keys=keys, args=args, client=client)

    Script.__call__ = counting  # type: ignore[method-assign]
    try:
        yield sizes
    finally:
        Script.__call__ = original  # type: ignore[method-assign]


def slowest_script_us(admin_redis: Any) -> int:
    """The longest ``EVALSHA``/``EVAL`` in Redis's SLOWLOG (µs; the server's own timing of the
    command, during which no other client is served), then the log emptied."""
    entries = admin_redis.slowlog_get(1024)
    admin_redis.slowlog_reset()
    scripts = [
        e["duration"]
        for e in entries
        if (e.get("command") or b"").split(b" ", 1)[0].upper() in (b"EVALSHA", b"EVAL")
    ]
    return max(scripts, default=0)


def measure(size: harness.Size, url: str | None) -> dict[str, Any]:
    """Render the first changelist page ``renders`` times for each size; median time, counts."""
    import redis
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from resilience import events
    from resilience.backends import get_backend

    harness.keep_only_policies(PREFIX)
    admin_redis = redis.Redis.from_url(url) if url else None
    if admin_redis is not None:  # log every command with its duration (our private server)
        admin_redis.config_set("slowlog-log-slower-than", 0)
        admin_redis.config_set("slowlog-max-len", 1024)
    client = _client()
    rows = []
    for count in size.policies:
        _grow_to(count, url)
        events.flush(10.0)
        response = client.get(URL)  # warm: templates, policy cache
        if response.status_code != 200:
            raise RuntimeError(f"changelist answered {response.status_code}")
        times, longest = [], 0
        for _ in range(size.renders):
            if admin_redis is not None:
                # What earlier calls left to send in the background (deferred successes, the
                # history's counts of every circuit called) is sent now, so that the server-side
                # counts and the SLOWLOG hold the render's commands, not those.
                get_backend().flush()
                admin_redis.slowlog_reset()  # before the count: not one of the render's
            before = commandstats(admin_redis) if admin_redis else None
            with CaptureQueriesContext(connection) as queries, RoundTrips() as trips:
                with script_keys() as keys:
                    started = time.perf_counter_ns()
                    response = client.get(URL)
                    times.append((time.perf_counter_ns() - started) / 1e6)
            commands = sum((commandstats(admin_redis) - before).values()) if before else 0
            if admin_redis is not None:
                longest = max(longest, slowest_script_us(admin_redis))
        rows.append(
            {
                "policies": count,
                "rows_shown": min(count, _page_size()),
                "ms": harness.summary(times),
                "sql_queries": len(queries),
                "redis_round_trips": trips.caller,
                "redis_commands": commands,
                "most_script_keys": max(keys, default=0),
                "longest_script_us": longest,
                "bytes": len(response.content),
            }
        )
    if admin_redis is not None:
        admin_redis.config_set("slowlog-log-slower-than", 10_000)  # Redis's default
        admin_redis.close()
    return {"backend": "redis" if url else "memory", "url": URL, "rows": rows}
