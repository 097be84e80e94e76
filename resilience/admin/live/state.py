"""Live circuit state for the admin: read from the backend, one round trip per request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from resilience.backends import get_backend
from resilience.engine import Policy
from resilience.engine_types import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    MONITOR,
    OPEN,
)
from resilience.exceptions import BackendError
from resilience.resolved import ENGINE_FIELDS
from resilience.sanitize import describe_error, one_line

logger = logging.getLogger("resilience")

UNKNOWN = "unknown"
# Display states, in the order the overview lists them (most urgent first).
LABELS = {
    OPEN: _("open"),
    HALF_OPEN: _("half-open"),
    FORCED_OPEN: _("forced open"),
    MONITOR: _("monitor"),
    DISABLED: _("disabled"),
    CLOSED: _("closed"),
    UNKNOWN: _("unknown"),
}
BROKEN = (OPEN, HALF_OPEN, FORCED_OPEN)
# Columns a ``values()`` query needs to rebuild an engine ``Policy`` (``mode`` included).
POLICY_COLUMNS = ("id", "name", *ENGINE_FIELDS)


@dataclass(frozen=True)
class Live:
    """The live view of one circuit: its display state and the backend snapshot behind it."""

    state: str
    snapshot: dict[str, Any] | None

    @property
    def label(self) -> str:
        return str(LABELS[self.state])

    @property
    def engine_state(self) -> str | None:
        """closed/open/half_open as the backend sees it (monitor mode shows what would happen)."""
        return self.snapshot["state"] if self.snapshot else None

    @property
    def broken(self) -> bool:
        return self.state in BROKEN

    def get(self, key: str, default: Any = None) -> Any:
        return self.snapshot.get(key, default) if self.snapshot else default


def display_state(mode: str, snapshot: dict[str, Any] | None) -> str:
    """What the operator should see: a mode that overrides the state wins."""
    if mode in (DISABLED, FORCED_OPEN):
        return mode
    if snapshot is None:
        return UNKNOWN
    if mode == MONITOR:
        return MONITOR
    return snapshot.get("state", UNKNOWN) if snapshot.get("state") in LABELS else UNKNOWN


def policy_from_values(values: dict[str, Any]) -> Policy:
    """The engine ``Policy`` of a row (a dict of ``POLICY_COLUMNS`` or a model instance)."""
    if not isinstance(values, dict):
        values = {name: getattr(values, name) for name in ENGINE_FIELDS}
    return Policy.from_mapping(values)


def read_backend(
    read: Callable[[Any], Any], failed: Any = None, shared_only: bool = False
) -> tuple[Any, str | None]:
    """``read(backend)`` and a warning for the operator when what it read is not the shared
    truth. Never raises: a failing backend gives ``None`` and the warning ``failed`` (with
    ``%(error)s``; by default: the states show as unknown). ``shared_only``: a read that has
    no local fallback (the outcome history) is not tried during a known outage: the page must
    not wait for one more socket timeout (``health()`` costs no round trip)."""
    try:
        backend = get_backend()
        if shared_only and backend.health().get("degraded"):
            raise BackendError("the backend is in an outage")
        value = read(backend)
        health = backend.health()  # in-process bookkeeping, no round trip
    except Exception as exc:  # the admin is the incident console: it must render anyway
        logger.warning("resilience: the admin could not read the backend: %s", describe_error(exc))
        if failed is None:
            failed = _("could not read the states (%(error)s); they show as unknown")
        return None, failed % {"error": type(exc).__name__}
    if health.get("degraded"):
        return value, _(
            "the backend is degraded (%(reason)s): these are this process's local states, "
            "not the shared ones"
        ) % {"reason": one_line(str(health.get("reason") or "?"), 200)}
    return value, None


def fetch(rows: Iterable[Any]) -> tuple[dict[str, Live], str | None]:
    """``{name: Live}`` for ``rows`` (dicts or instances) with ONE ``snapshot_many`` call.

    Never raises: a failing backend makes every state ``unknown``. The second value is a
    warning for the operator when the states are not the shared truth (backend failed, or
    degraded and answering from this process's local fallback).
    """
    modes, policies = {}, {}
    for row in rows:
        name = row["name"] if isinstance(row, dict) else row.name
        modes[name] = row["mode"] if isinstance(row, dict) else row.mode
        policies[name] = policy_from_values(row)
    if not policies:
        return {}, None
    # A circuit past its open time is moved to half-open first: a quiet one never looks open.
    snapshots, warning = read_backend(lambda backend: backend.snapshot_current(policies))
    snapshots = snapshots or {}
    states = {
        name: Live(display_state(modes[name], snapshots.get(name)), snapshots.get(name))
        for name in policies
    }
    return states, warning
