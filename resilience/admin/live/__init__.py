"""Live circuit state in the admin: read once per request (state), the changelist's index of
broken circuits (board), and its wording in cells and panels (cells)."""

from resilience.admin.live.board import Board
from resilience.admin.live.cells import (
    ago,
    badge,
    consecutive,
    critical_marker,
    duration,
    failure_rate,
    in_flight,
    next_trial,
    state_cell,
)
from resilience.admin.live.state import (
    BROKEN,
    LABELS,
    POLICY_COLUMNS,
    UNKNOWN,
    Live,
    display_state,
    fetch,
    policy_from_values,
    read_backend,
)

__all__ = [
    "BROKEN",
    "LABELS",
    "POLICY_COLUMNS",
    "UNKNOWN",
    "Board",
    "Live",
    "ago",
    "badge",
    "consecutive",
    "critical_marker",
    "display_state",
    "duration",
    "failure_rate",
    "fetch",
    "in_flight",
    "next_trial",
    "policy_from_values",
    "read_backend",
    "state_cell",
]
