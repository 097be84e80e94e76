"""Tasks the real test worker runs: a payments task on ``CircuitBreakerTask``."""

from __future__ import annotations

import json
import time

from celery import shared_task

from resilience import CircuitOpenError, circuit_breaker
from resilience.contrib.celery import CIRCUIT_RETRIES_HEADER, CircuitBreakerTask


@circuit_breaker("payments-api")
def charge_card(order_id: int) -> str:
    return f"charged order {order_id}"


@shared_task(bind=True, base=CircuitBreakerTask, max_retries=0, ignore_result=True)
def charge(self, order_id: int, log_path: str) -> str:
    """Charge an order; each run appends one JSON line (time, retries, outcome) to ``log_path``."""
    record = {
        "at": time.time(),
        "retries": self.request.retries,
        "circuit_retries": (self.request.headers or {}).get(CIRCUIT_RETRIES_HEADER, 0),
    }
    try:
        result = charge_card(order_id)
        record["outcome"] = result
        return result
    except CircuitOpenError as exc:
        record["outcome"] = "rejected"
        record["retry_after"] = exc.retry_after
        raise
    finally:
        with open(log_path, "a") as out:
            out.write(json.dumps(record) + "\n")
