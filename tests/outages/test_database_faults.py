"""A hung database (PostgreSQL behind a proxy that accepts and never answers) and the call path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from resilience.policies import FIRST_LOAD_WAIT_SECONDS
from tests.support.faultproxy import FaultProxy

PG_HOST, PG_PORT = "127.0.0.1", 5432


def _postgres_or_skip():
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", connect_timeout=2).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL on {PG_HOST}:{PG_PORT}: {type(exc).__name__}")
    return psycopg


@pytest.mark.slow
def test_a_new_process_does_not_wait_for_a_hung_database_at_its_first_call():
    """Before: the first call of each circuit read its policy row on the call path and blocked
    for as long as the database did (more than 20 s; libpq has no connect timeout)."""
    psycopg = _postgres_or_skip()
    with FaultProxy(PG_HOST, PG_PORT) as proxy:
        # A real PostgreSQL answers through the proxy ...
        with psycopg.connect(host=proxy.host, port=proxy.port, user="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        proxy.blackhole()  # ... until it hangs: connections accepted, nothing ever answered
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@{proxy.host}:{proxy.port}/h3_hung",
        }
        done = subprocess.run(
            [sys.executable, "-m", "tests.outages.hungdb_worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # The first call waits for its policy at most FIRST_LOAD_WAIT_SECONDS (slack: a loaded
    # machine), then runs under the defaults; with the read stuck, later first calls do not
    # wait at all.
    assert report["first"] < FIRST_LOAD_WAIT_SECONDS + 0.45, report
    assert report["second"] < FIRST_LOAD_WAIT_SECONDS + 0.45, report
    assert report["waits_now"] is False
