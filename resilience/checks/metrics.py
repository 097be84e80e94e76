"""Checks of ``RESILIENCE["METRICS"]``: how many circuits the metrics endpoint shows apart."""

from __future__ import annotations

from typing import Any

from resilience.checks.keys import nested
from resilience.rules import Problem, number


def check_metrics(raw: dict[str, Any]) -> list[Problem]:
    metrics = nested(raw, "METRICS")
    if "MAX_CIRCUITS" not in metrics:
        return []
    return number(
        "METRICS.MAX_CIRCUITS",
        "METRICS['MAX_CIRCUITS']",
        metrics["MAX_CIRCUITS"],
        1,
        100_000,
        integer=True,
        hint='Circuits with series of their own (the others are summed as circuit="_other"); '
        "the default is 100.",
    )
