"""Backend failures seen by concurrent callers: what redis-py raises stays inside the backend."""

from __future__ import annotations

import threading
import time

import pytest

from resilience import circuit_breaker
from resilience.backends import get_backend

pytestmark = pytest.mark.django_db


def test_staggered_timeouts_on_a_hung_server_never_reach_callers(redis_proc, settings):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "socket_timeout": 0.3, "reprobe_interval": 60},
    }

    @circuit_breaker("hung-concurrent")
    def call() -> str:
        return "ok"

    assert call() == "ok"
    redis_proc.pause()
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)

    # The first caller times out while the second is still waiting for its reply.
    first = threading.Thread(target=caller)
    second = threading.Thread(target=caller)
    first.start()
    time.sleep(0.1)
    second.start()
    first.join(5)
    second.join(5)
    assert get_backend().health()["degraded"]
    assert errors == []
