"""The circuit overview read by ``health/``, ``metrics/`` and ``manage.py resilience status``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError

from resilience.backends import get_backend
from resilience.engine_types import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from resilience.logs import ThrottledLog
from resilience.models import BreakerPolicy
from resilience.policies import ResolvedPolicy

logger = logging.getLogger("resilience")
# The health endpoint is probed every few seconds: one WARNING a minute per kind of failure.
database_log = ThrottledLog(logger, 60.0)
backend_log = ThrottledLog(logger, 60.0)

STATES = (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED)
DOWN_STATES = frozenset({OPEN, HALF_OPEN, FORCED_OPEN})
# Keys of ``Backend.health()`` that are safe to show: never locations, URLs or error texts.
PUBLIC_BACKEND_KEYS = ("backend", "degraded", "degraded_since", "outages")


@dataclass
class Overview:
    """Every policy's circuit (one SQL query, one backend round trip) and the backend's health."""

    circuits: dict[str, dict[str, Any]] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)
    database: bool = True  # False: the policies could not be read
    # Each policy row's id: the order in which circuits were created (the metrics' cap keeps
    # the oldest; see resilience.prometheus).
    row_ids: dict[str, int] = field(default_factory=dict)

    @property
    def critical_down(self) -> list[str]:
        return [
            name
            for name, circuit in self.circuits.items()
            if circuit["critical"] and circuit["state"] in DOWN_STATES
        ]

    @property
    def healthy(self) -> bool:
        return self.database and not self.backend.get("degraded") and not self.critical_down


def overview() -> Overview:
    """Collect the overview; a failing backend or database reads as degraded, it never raises."""
    database = True
    try:
        rows = list(BreakerPolicy.objects.all())
    except DatabaseError as exc:
        database_log.log(
            logging.WARNING,
            "resilience: cannot read policies for health/metrics: %s",
            type(exc).__name__,
        )
        rows, database = [], False
    resolved = {row.name: ResolvedPolicy.from_row(row) for row in rows}
    backend = get_backend()
    try:
        # Circuits past their open time move to half-open here, even if nobody calls them.
        snapshots = backend.snapshot_current({name: r.policy for name, r in resolved.items()})
        health = backend.health()  # after the round trip, so it reflects an outage it found
    except Exception as exc:  # the health endpoint must answer "degraded", not 500
        backend_log.log(
            logging.WARNING,
            "resilience: backend unavailable for health/metrics: %s",
            type(exc).__name__,
        )
        health, snapshots = {"backend": type(backend).__name__, "degraded": True}, {}
    result = Overview(
        backend={k: health[k] for k in PUBLIC_BACKEND_KEYS if k in health},
        database=database,
        row_ids={row.name: row.pk for row in rows},
    )
    for name, r in resolved.items():
        snap = snapshots.get(name, {})
        state = r.mode if r.mode in (FORCED_OPEN, DISABLED) else snap.get("state", "unknown")
        result.circuits[name] = {
            "state": state,
            "mode": r.mode,
            "critical": r.critical,
            "consecutive_failures": snap.get("consecutive_failures", 0),
            "failure_rate": snap.get("failure_rate"),
            "calls_in_window": snap.get("calls_in_window", 0),
            "retry_after": snap.get("retry_after", 0.0),
            "trips": snap.get("trips", 0),
            # None: not counted (no cap and no call deadline) or the backend is unreachable.
            "in_flight": snap.get("in_flight"),
            "max_concurrent_calls": r.policy.max_concurrent_calls,
        }
    return result
