"""``CircuitBreakerTask``: a task meeting an open circuit is retried by a real worker (private
Redis broker, shared Redis state) after the circuit's ``retry_after``, without using up
``max_retries``."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from resilience import CircuitOpenError, circuit_breaker
from tests.factories import BreakerPolicyFactory
from tests.support.celeryworker import CeleryWorker, broker_client
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RECOVERY = 3.0  # seconds the circuit stays open


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def runs(path, count: int, timeout: float = 30.0) -> list[dict]:
    got = wait_until(lambda: len(lines(path)) >= count, timeout, 0.05)
    assert got, f"{count} runs expected, got {lines(path)}"
    return [json.loads(line) for line in lines(path)]


def test_an_open_circuit_retries_the_task_after_retry_after(
    redis_proc, redis_url, settings, tmp_path
):
    state = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url, "prefix": "celerytask"},
        "ALERTS": {"DELIVERY": "sync", "CHANNELS": []},
    }
    settings.RESILIENCE = state
    BreakerPolicyFactory(name="payments-api", failure_threshold=2, recovery_timeout=RECOVERY)

    @circuit_breaker("payments-api")
    def failing() -> None:
        raise ConnectionError("payments API down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            failing()
    with pytest.raises(CircuitOpenError):
        failing()  # open for RECOVERY seconds, in Redis: the worker sees it too

    env = {
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SETTINGS": json.dumps(state),
    }
    worker = CeleryWorker(redis_proc.url, env).start()
    try:
        log = tmp_path / "runs.jsonl"
        with broker_client(redis_proc.url) as client:
            client.send_task("tests.support.celerytasks.charge", (42, str(log)))
            first, second = runs(log, 2)
        third = wait_until(lambda: len(lines(log)) > 2, 0.5, 0.05)  # within half a second
        assert not third, worker.output()[-4000:]
        output = worker.output()
    finally:
        worker.close()

    assert first["outcome"] == "rejected" and 0 < first["retry_after"] <= RECOVERY
    # max_retries=0, yet retried: open-circuit retries keep request.retries at 0 and are
    # counted in their own header.
    assert (first["retries"], first["circuit_retries"]) == (0, 0)
    assert (second["retries"], second["circuit_retries"]) == (0, 1)
    assert second["outcome"] == "charged order 42"  # the trial call after the open time
    waited = second["at"] - first["at"]
    # countdown = retry_after + up to 10 % jitter; plus the worker's own latency.
    assert first["retry_after"] <= waited <= first["retry_after"] * 1.1 + 1.0, waited
    assert "Retry in" in output
