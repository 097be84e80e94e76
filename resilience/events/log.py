"""One log line per transition or manual action, by the process that performed it."""

from __future__ import annotations

import logging
from typing import Any

from resilience.engine import Transition
from resilience.sanitize import one_line

logger = logging.getLogger("resilience")


def log_event(
    circuit: str,
    kind: str,
    transition: Transition | None,
    error: str,
    actor: Any,
    reason: str,
    level: int = logging.WARNING,
) -> None:
    """One log line per transition or manual action, by the process that performed it."""
    circuit = one_line(circuit, 100)
    head = f"Circuit {circuit} {kind}"
    details = []
    if transition is not None:
        head += f" ({transition.from_state} -> {transition.to_state})"
        if transition.failure_count:
            details.append(f"{transition.failure_count} failure(s)")
        if transition.failure_rate is not None:
            details.append(f"{transition.failure_rate:.0f}% failure rate")
    if actor is not None:
        details.append(f"by {one_line(str(actor), 150)}")
    if reason:
        details.append(f"reason: {one_line(reason, 200)}")
    if error:
        details.append(f"last error: {error}")
    message = "; ".join([head, *details])
    logger.log(level, "%s", message, extra={"circuit": circuit, "event_kind": kind})
