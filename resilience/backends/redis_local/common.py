"""What the Redis backend's in-process structures share: the script form of a policy, local time."""

from __future__ import annotations

import time
from typing import Any

from resilience.engine import Policy

# How long a background thread (deferred successes, slot give-backs) gathers urgent work
# before sending it: well under one switch interval of the interpreter, far less than a window
# bucket. Read as ``common.URGENT_BATCH_SECONDS`` so that a test can change it for both.
URGENT_BATCH_SECONDS = 0.002


def policy_args(policy: Policy) -> list[Any]:
    """A policy as the scripts read it (``policy_from`` in common.lua)."""
    return [
        policy.failure_threshold,
        policy.failure_rate_threshold,
        policy.minimum_calls,
        policy.bucket_ms,
        repr(float(policy.recovery_timeout)),
        repr(float(policy.backoff_multiplier)),
        repr(float(policy.max_recovery_timeout)),
        policy.success_threshold,
    ]


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
