"""Spawned processes for the history tests: protected calls with known outcomes, through the
public API, with Django set up from ``tests.support.procsettings`` (the environment at spawn)."""

from __future__ import annotations

import time
import traceback
from typing import Any

SHARED, SLOW, TRIPPING = "history-shared", "history-slow", "history-tripping"


class Boom(Exception):
    pass


def _calls(counts: dict[str, int], name: str, func: Any, times: int) -> None:
    """Call ``func`` (protected by ``name``) ``times`` times; count what each call did."""
    from resilience import CircuitOpenError

    for _ in range(times):
        try:
            func()
            counts[f"{name}:calls"] += 1
        except CircuitOpenError:
            counts[f"{name}:rejected"] += 1
        except Boom:
            counts[f"{name}:calls"] += 1
            counts[f"{name}:failures"] += 1


def outcomes(start: Any, results: Any) -> None:
    """After ``start``: successes, failures and ignored errors on SHARED, slow calls on SLOW,
    failures on TRIPPING (opened by the first, then rejected); reports what it made, then exits
    (the history's last counts are sent at exit). A slow call returns its result to the caller;
    the history counts it slow, and a failure (a timeout) if the watchdog judged it while it
    ran."""
    try:
        import django

        django.setup()
        from collections import Counter

        from resilience import circuit_breaker
        from resilience.policies import registry

        registry.background = False  # the policies of RESILIENCE["POLICIES"], no SQL
        counts: Counter[str] = Counter()

        @circuit_breaker(SHARED)
        def ok() -> str:
            return "ok"

        @circuit_breaker(SLOW)
        def slow() -> str:
            time.sleep(0.2)  # slow_call_ms is 150: judged at 150 ms, a failure (a timeout)
            return "ok"

        @circuit_breaker(SHARED)
        def fail() -> None:
            raise Boom()

        @circuit_breaker(SHARED, ignore=(KeyError,))
        def ignored() -> None:
            raise KeyError("not counted")

        @circuit_breaker(TRIPPING)
        def trips() -> None:
            raise Boom()

        start.wait(60)
        for _ in range(5):
            _calls(counts, SHARED, ok, 40)
            _calls(counts, SHARED, fail, 10)
            _calls(counts, SLOW, slow, 2)
            for _ in range(3):
                try:
                    ignored()
                except KeyError:
                    pass
            _calls(counts, TRIPPING, trips, 4)
        results.put(dict(counts))
    except BaseException:
        results.put({"error": traceback.format_exc()})
