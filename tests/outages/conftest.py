"""Fixtures for fault tests: a private redis-server behind a fault-injecting proxy."""

from __future__ import annotations

import pytest
import redis as redis_py

from tests.support.faultproxy import FaultProxy
from tests.support.redisproc import REDIS_SERVER, RedisProcess
from tests.support.smtp import SMTPServer


@pytest.fixture
def redis_proc():
    """A redis-server of this test's own, free to be stopped, paused and flushed."""
    if not REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    with RedisProcess() as server:
        yield server


@pytest.fixture
def proxy(redis_proc):
    """A fault proxy in front of ``redis_proc``: the app connects here, faults are injected here."""
    with FaultProxy(redis_proc.host, redis_proc.port) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def admin_redis(redis_proc):
    """A direct client to ``redis_proc`` (not through the proxy), for SCRIPT FLUSH, DEL, ..."""
    client = redis_py.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def smtp_server():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server):
    """The session's SMTP server, emptied: load workers mail their alerts there."""
    smtp_server.clear()
    yield smtp_server
    smtp_server.release()
