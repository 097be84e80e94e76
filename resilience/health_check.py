"""A django-health-check (4.x) check: a critical circuit down fails it, another one warns."""

from __future__ import annotations

import dataclasses

from asgiref.sync import sync_to_async
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from resilience.metrics import DOWN_STATES, Overview, overview


@dataclasses.dataclass
class CircuitBreakers(HealthCheck):
    """The circuits of every policy, as django-health-check sees them (docs/operations.md).

    Unavailable when a critical circuit is open, half-open or forced open, or when the backend
    or the database cannot be read; a warning when only non-critical circuits are down.
    django-health-check 4 answers 500 for a warning too: ``critical_only=True`` reports the
    non-critical circuits as OK, for an endpoint a load balancer reads. ``show_names=True``
    names the circuits in the message (only counts by default: the page may be public).
    """

    critical_only: bool = False
    show_names: bool = False

    async def run(self) -> None:
        # The ORM and the backend are synchronous; thread_sensitive keeps the request's
        # database connection, as Django does for its own sync code in async views.
        self.judge(await sync_to_async(overview)())

    def judge(self, view: Overview) -> None:
        """Raise for what ``view`` shows is wrong; return when all is well."""
        if not view.database:
            raise ServiceUnavailable("the breaker policies cannot be read from the database")
        if view.backend.get("degraded"):
            raise ServiceUnavailable("the circuit-state backend is unreachable")
        if view.critical_down:
            raise ServiceUnavailable(self._down("critical", view.critical_down))
        down = sorted(
            name
            for name, circuit in view.circuits.items()
            if circuit["state"] in DOWN_STATES and not circuit["critical"]
        )
        if down and not self.critical_only:
            raise ServiceWarning(self._down("non-critical", down))

    def _down(self, kind: str, names: list[str]) -> str:
        listed = f": {', '.join(sorted(names))}" if self.show_names else ""
        return f"{len(names)} {kind} circuit(s) open, half-open or forced open{listed}"
