"""What the Redis backend keeps in-process: rejections, deferred successes, outbox entries,
slot give-backs (one module each)."""

from resilience.backends.redis_local.common import (
    URGENT_BATCH_SECONDS,
    monotonic_ms,
    policy_args,
)
from resilience.backends.redis_local.deferred import Deferred, Pending
from resilience.backends.redis_local.open_cache import OpenCache
from resilience.backends.redis_local.outboxed import Outboxed
from resilience.backends.redis_local.slots import SlotReturns

__all__ = [
    "URGENT_BATCH_SECONDS",
    "Deferred",
    "OpenCache",
    "Outboxed",
    "Pending",
    "SlotReturns",
    "monotonic_ms",
    "policy_args",
]
