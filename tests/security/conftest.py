"""Fixtures for security tests: the fault suite's private redis-server and its direct client."""

from tests.faults.conftest import admin_redis, redis_proc

__all__ = ["admin_redis", "redis_proc"]
