"""A call hung in another real process opens the shared circuit at its deadline."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from resilience.backends.redis import RedisBackend
from resilience.engine import Policy
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SLOW_MS = 300
POLICY = {"slow_call_ms": SLOW_MS, "failure_threshold": 1, "recovery_timeout": 60}


def test_a_hang_in_another_process_opens_the_circuit_before_the_call_returns(redis_proc, tmp_path):
    prefix = f"hx{time.monotonic_ns()}"
    settings = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "prefix": prefix, "socket_timeout": 5.0},
        "POLICIES": {"hang-x": POLICY},
        "CREATE_MISSING_POLICIES": False,
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
        # Its own SQLite file, whatever database the suite runs on (it only needs the tables
        # for its events; the circuit's state is in Redis).
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "RESILIENCE_TEST_DB_NAME": str(tmp_path / "db.sqlite3"),
        "RESILIENCE_TEST_SETTINGS": json.dumps(settings),
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.isolation.hung_worker", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    here = RedisBackend(url=redis_proc.url, prefix=prefix, socket_timeout=5.0)
    policy = Policy(**POLICY)
    try:
        assert worker.stdout.readline().strip() == "inside"
        started = time.monotonic()
        opened = wait_until(lambda: here.snapshot("hang-x", policy)["state"] == "open", 5)
        assert opened, "the hang never opened the circuit"
        opened_after = time.monotonic() - started
        assert worker.poll() is None  # still hanging
        assert opened_after < SLOW_MS / 1000 + 1
        # This process sees it too: refused without touching the upstream.
        assert not here.acquire("hang-x", policy).admitted
        before = here.snapshot("hang-x", policy)
        assert worker.stdout.readline().strip() == "returned late"
        assert worker.wait(10) == 0
        after = here.snapshot("hang-x", policy)
        # The late success changed nothing: same generation, still open, one trip.
        assert (after["state"], after["generation"], after["trips"]) == (
            "open",
            before["generation"],
            1,
        )
        assert after["in_flight"] == 0  # and its slot came back
    finally:
        worker.kill()
        worker.wait(10)
        here.close()
