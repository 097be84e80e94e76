"""The hanging-upstream scenario: gunicorn serving ``hangsite``, clients on the hanging view,
an unrelated page probed throughout. Used by tests/isolation and benchmarks/hanging.py."""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.redisproc import free_port
from tests.support.upstream import HangingUpstream

ROOT = Path(__file__).resolve().parents[2]
CIRCUIT = "hang-upstream"  # the circuit of the site's view
# The recommended policy for sync workers (docs/hangs.md): at most 2 of the 4 workers may wait
# on this upstream at once, a call running 1 s counts as a failure while it runs, no call waits
# more than 2 s, and the circuit opens when both slots hang (failure_threshold = the cap: one
# slow call among healthy ones does not open it). A half-open trial every 10 s costs one worker
# for at most a second.
RECOMMENDED = {
    "max_concurrent_calls": 2,
    "slow_call_ms": 1000,
    "call_timeout_ms": 2000,
    "failure_threshold": 2,
    "recovery_timeout": 10,
}


class Gunicorn:
    """``gunicorn tests.support.hangsite.wsgi`` with ``workers`` sync workers, in a session of its
    own so that ``stop()`` ends the master and every worker by the group's id, even mid-hang.

    ``env`` is added to this process's environment (``DJANGO_SETTINGS_MODULE``, the database,
    ``RESILIENCE_TEST_SETTINGS``, ``HANG_*``); the log goes to ``log_path``.
    """

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 4) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.support.hangsite.settings",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        self.workers = workers
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Gunicorn:
        argv = [
            sys.executable, "-m", "gunicorn", "tests.support.hangsite.wsgi",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--worker-class", "sync",
            "--backlog", "256",
            "--graceful-timeout", "2",
            "--log-level", "warning",
        ]  # fmt: skip
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if get(self.url, "/ok/", 1.0)[0] == "ok":
                return self
            time.sleep(0.1)
        log = self.log()
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout}s: {log}")

    def warm(self, path: str, rounds: int = 3) -> None:
        """Every worker imports and connects before the scenario: ``workers * rounds`` calls,
        concurrent so that they spread over the workers."""
        threads = [
            threading.Thread(target=get, args=(self.url, path, 10.0))
            for _ in range(self.workers * rounds)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        # Workers a hung master left behind: the group's id is the master's pid.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        self._log.close()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def get(base: str, path: str, timeout: float) -> tuple[str, float]:
    """``GET base+path``: (``X-Outcome`` header, or the error's class name; seconds taken)."""
    host, port = base.removeprefix("http://").split(":")
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        outcome = response.getheader("X-Outcome") or f"http-{response.status}"
        if response.status != 200:
            outcome = f"http-{response.status}"
    except (OSError, http.client.HTTPException) as exc:
        outcome = type(exc).__name__
    finally:
        conn.close()
    return outcome, time.monotonic() - started


@dataclass
class Outcome:
    """What the probes and the clients saw, and what the upstream saw."""

    hang_started: float
    probes: list[tuple[float, str, float]] = field(default_factory=list)  # (at, outcome, s)
    calls: list[tuple[float, str, float]] = field(default_factory=list)
    opened_at: float | None = None  # time.time() the breaker was first seen open
    upstream_hits: int = 0
    upstream_max_in_flight: int = 0
    first_abandoned: float | None = None

    @property
    def availability(self) -> float:
        """Share of probes of the unrelated page answered (200, within the probe's timeout)."""
        return sum(o == "ok" for _, o, _ in self.probes) / max(1, len(self.probes))

    @property
    def probe_p99(self) -> float:
        latencies = sorted(s for _, _, s in self.probes)
        if len(latencies) < 2:
            return latencies[0] if latencies else 0.0
        return statistics.quantiles(latencies, n=100, method="inclusive")[98]

    @property
    def time_to_open(self) -> float | None:
        return None if self.opened_at is None else self.opened_at - self.hang_started

    def summary(self) -> dict[str, Any]:
        return {
            "availability": round(self.availability, 4),
            "probes": len(self.probes),
            "probe_outcomes": dict(Counter(o for _, o, _ in self.probes)),
            "probe_p99_s": round(self.probe_p99, 4),
            "time_to_open_s": None if self.time_to_open is None else round(self.time_to_open, 3),
            "upstream_hits": self.upstream_hits,
            "upstream_max_in_flight": self.upstream_max_in_flight,
            "client_calls": len(self.calls),
            "client_outcomes": dict(Counter(o for _, o, _ in self.calls)),
        }


def run(
    site: Gunicorn,
    upstream: HangingUpstream,
    seconds: float,
    clients: int = 20,
    probe_every: float = 0.5,
    probe_timeout: float = 2.0,
    is_open: Callable[[], bool] | None = None,
) -> Outcome:
    """Hang the upstream, then for ``seconds``: ``clients`` threads call ``/quote/`` back to
    back, ``/ok/`` is probed every ``probe_every`` s with a ``probe_timeout`` client timeout, and
    ``is_open()`` (if given) is polled every 50 ms to time the opening. Every loop is bounded by
    the end of the window; calls still hanging then are left to ``upstream.close()``."""
    outcome = Outcome(hang_started=upstream.hang())
    end = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
        while time.monotonic() < end:
            at = time.time()
            result, took = get(site.url, "/quote/", max(0.1, end - time.monotonic()))
            with lock:
                outcome.calls.append((at, result, took))
            time.sleep(0.01)

    def watch() -> None:
        assert is_open is not None
        while time.monotonic() < end and outcome.opened_at is None:
            if is_open():
                outcome.opened_at = time.time()
            time.sleep(0.05)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    if is_open is not None:
        threads.append(threading.Thread(target=watch, daemon=True))
    for thread in threads:
        thread.start()

    def probe() -> None:
        at = time.time()
        result, took = get(site.url, "/ok/", probe_timeout)
        with lock:
            outcome.probes.append((at, result, took))

    # One probe every ``probe_every`` s whatever the previous one is doing, as a monitor does.
    next_probe = time.monotonic()
    while next_probe < end:
        time.sleep(max(0.0, next_probe - time.monotonic()))
        threads.append(threading.Thread(target=probe, daemon=True))
        threads[-1].start()
        next_probe += probe_every
    for thread in threads:
        thread.join(max(0.1, end - time.monotonic()) + 2)
    outcome.upstream_hits = upstream.hits_since_hang
    outcome.upstream_max_in_flight = upstream.max_in_flight
    outcome.first_abandoned = upstream.first_abandoned
    return outcome


def site_env(
    db_name: str,
    redis_url: str,
    upstream: HangingUpstream,
    protection: str = "ours",
    policy: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment of a hang site: database ``db_name``, state in Redis at ``redis_url``,
    ``policy`` (if any) for ``CIRCUIT`` in ``POLICIES``, in force from each worker's first call
    (the row, if the caller creates one, applies once a worker's background thread read it)."""
    resilience: dict[str, Any] = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        # Above the 50 ms default only so that a busy 2-core machine does not push the backend
        # onto its per-process fallback, which would measure the fallback's cap instead.
        "OPTIONS": {"url": redis_url, "prefix": "hang", "socket_timeout": 0.5},
    }
    if policy is not None:
        resilience["POLICIES"] = {CIRCUIT: policy}
    return {
        "RESILIENCE_TEST_DB_NAME": db_name,
        "RESILIENCE_TEST_SETTINGS": json.dumps(resilience),
        "HANG_UPSTREAM_URL": upstream.url,
        "HANG_PROTECTION": protection,
    }
