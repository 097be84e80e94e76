"""Fixtures for backend tests: a private redis-server (never the system one on 6379)."""

from __future__ import annotations

import itertools
import socket

import pytest

from tests.support.redisproc import REDIS_SERVER, RedisProcess

_db_numbers = itertools.cycle(range(1, 64))


def _flushdb(host: str, port: int, db: int) -> None:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
        assert data == b"+OK\r\n+OK\r\n", data


@pytest.fixture(scope="session")
def redis_server():
    """One private redis-server for the session; tests that break Redis use ``redis_proc``."""
    if not REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    with RedisProcess() as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    """A URL to an emptied database of the session server, different for consecutive tests."""
    if not redis_server.running:  # a test misbehaved: keep the rest of the session usable
        redis_server.start()
    redis_server.resume()
    db = next(_db_numbers)
    _flushdb(redis_server.host, redis_server.port, db)
    return redis_server.url_for_db(db)


@pytest.fixture
def redis_proc():
    """A redis-server of this test's own, free to be stopped, paused and flushed."""
    if not REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    with RedisProcess() as server:
        yield server
