"""The policy changelist: render time, SQL queries and Redis round trips for 10 to 1,000 rows."""

from __future__ import annotations

import time
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


def measure(size: harness.Size, url: str | None) -> dict[str, Any]:
    """Render the first changelist page ``renders`` times for each size; median time, counts."""
    import redis
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from resilience import events

    harness.keep_only_policies(PREFIX)
    admin_redis = redis.Redis.from_url(url) if url else None
    client = _client()
    rows = []
    for count in size.policies:
        _grow_to(count, url)
        events.flush(10.0)
        response = client.get(URL)  # warm: templates, policy cache
        if response.status_code != 200:
            raise RuntimeError(f"changelist answered {response.status_code}")
        times = []
        for _ in range(size.renders):
            before = commandstats(admin_redis) if admin_redis else None
            with CaptureQueriesContext(connection) as queries, RoundTrips() as trips:
                started = time.perf_counter_ns()
                response = client.get(URL)
                times.append((time.perf_counter_ns() - started) / 1e6)
            commands = sum((commandstats(admin_redis) - before).values()) if before else 0
        rows.append(
            {
                "policies": count,
                "rows_shown": min(count, _page_size()),
                "ms": harness.summary(times),
                "sql_queries": len(queries),
                "redis_round_trips": trips.caller,
                "redis_commands": commands,
                "bytes": len(response.content),
            }
        )
    if admin_redis is not None:
        admin_redis.close()
    return {"backend": "redis" if url else "memory", "url": URL, "rows": rows}
