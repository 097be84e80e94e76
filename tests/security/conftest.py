"""Fixtures for security tests, shared with the fault and alert suites (private servers)."""

from tests.alerts.conftest import smtp, smtp_server, sync_alerts
from tests.outages.conftest import admin_redis, redis_proc

__all__ = ["admin_redis", "redis_proc", "smtp", "smtp_server", "sync_alerts"]
