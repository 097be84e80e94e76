"""Spawned processes for the bulkhead tests: threads calling an upstream through the requests
adapter, with Django set up from ``tests.support.procsettings`` (the environment at spawn)."""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from typing import Any

CIRCUIT = "bulkhead-shared"


def _setup() -> None:
    """Django, and a check that the cap is in force from the first call: the policy comes from
    ``RESILIENCE["POLICIES"]`` until the background thread has read the row (a call never waits
    for the database)."""
    import django

    django.setup()
    from resilience.policies import registry

    assert registry.get(CIRCUIT).policy.max_concurrent_calls, "no cap in POLICIES"


def _session() -> Any:
    import requests

    from resilience.contrib.requests import CircuitBreakerAdapter

    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter(CIRCUIT))
    return session


def callers(url: str, threads: int, seconds: float, start: Any, results: Any, enough: Any) -> None:
    """``threads`` threads call ``url`` back to back after ``start``, until the ``enough`` event
    is set (at most ``seconds``); reports ``{"ok": n, "refused": n, ...}`` (``refused``:
    BulkheadFullError) or ``{"error": ...}``."""
    try:
        _setup()
        from resilience import BulkheadFullError

        counts: Counter[str] = Counter()
        lock = threading.Lock()

        def loop(end: float) -> None:
            session = _session()
            while time.monotonic() < end and not enough.is_set():
                try:
                    session.get(url, timeout=10).raise_for_status()
                    outcome = "ok"
                except BulkheadFullError:
                    outcome = "refused"
                    time.sleep(0.002)
                except Exception as exc:
                    outcome = f"unexpected {type(exc).__name__}: {exc}"[:200]
                with lock:
                    counts[outcome] += 1

        start.wait(120)
        end = time.monotonic() + seconds
        workers = [threading.Thread(target=loop, args=(end,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(seconds + 30)
        results.put(dict(counts))
    except BaseException:
        results.put({"error": traceback.format_exc()})


def holder(url: str, calls: int, results: Any) -> None:
    """Start ``calls`` calls to ``url`` (which hangs) in threads and wait to be killed."""
    try:
        _setup()
        for _ in range(calls):
            threading.Thread(target=lambda: _session().get(url, timeout=120), daemon=True).start()
        results.put("started")
        time.sleep(120)
    except BaseException:
        results.put({"error": traceback.format_exc()})
