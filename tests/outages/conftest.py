"""Fixtures of the outage tests: a fault-injecting proxy in front of a private redis-server.
(``redis_proc``, ``admin_redis`` and ``smtp`` are fixtures of tests/conftest.py.)"""

from __future__ import annotations

import pytest

from tests.support.faultproxy import FaultProxy


@pytest.fixture
def proxy(redis_proc):
    """A fault proxy in front of ``redis_proc``: the app connects here, faults are injected here."""
    with FaultProxy(redis_proc.host, redis_proc.port) as fault_proxy:
        yield fault_proxy
