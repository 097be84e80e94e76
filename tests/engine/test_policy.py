"""The engine's Policy: defaults, validation, derived widths (docs/engine.md)."""

from __future__ import annotations

import dataclasses

import pytest

from resilience.engine import Policy

# --- Policy -------------------------------------------------------------------------------------


def test_policy_defaults_follow_the_design():
    p = Policy()
    assert (p.mode, p.failure_threshold, p.failure_rate_threshold) == ("enforced", 5, 0)
    assert (p.window_seconds, p.minimum_calls, p.slow_call_ms) == (60, 10, 0)
    assert (p.recovery_timeout, p.backoff_multiplier, p.max_recovery_timeout) == (60.0, 1.0, 600.0)
    assert (p.half_open_max_calls, p.success_threshold, p.version) == (1, 1, 0)
    assert p.bucket_ms == 6000
    assert p.permit_ttl_ms == 30_000


def test_policy_is_frozen_and_hashable():
    p = Policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.failure_threshold = 3
    assert hash(p) == hash(Policy())


def test_policy_from_mapping_ignores_unknown_keys_and_coerces():
    p = Policy.from_mapping(
        {
            "name": "payments-api",
            "mode": "monitor",
            "failure_threshold": "3",
            "recovery_timeout": 5,
            "slow_call_ms": None,
            "critical": True,
            "bucket_ms": 1,
        }
    )
    assert p == Policy(mode="monitor", failure_threshold=3, recovery_timeout=5.0)
    assert isinstance(p.recovery_timeout, float)
    assert p.bucket_ms == 6000  # derived, never taken from the mapping


def test_policy_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        Policy(mode="sometimes")


@pytest.mark.parametrize(
    ("window_seconds", "bucket_ms"), [(1, 100), (60, 6000), (7, 700), (0.0155, 2)]
)
def test_bucket_width_is_a_tenth_of_the_window_rounded_up(window_seconds, bucket_ms):
    assert Policy(window_seconds=window_seconds).bucket_ms == bucket_ms


@pytest.mark.parametrize(("slow_call_ms", "ttl"), [(0, 30_000), (15_000, 30_000), (20_000, 40_000)])
def test_permit_ttl(slow_call_ms, ttl):
    assert Policy(slow_call_ms=slow_call_ms).permit_ttl_ms == ttl
