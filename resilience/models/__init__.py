"""The app's database models, one module per model (``PolicyRevision`` sits in
``resilience.revisions``); import them from here: ``from resilience.models import BreakerPolicy``.

- ``policy``: ``BreakerPolicy``, its ``Mode`` and bulk ``update()``, the kill-switch expiry
  and the maintenance-window sweep; ``bounds``: the range of every policy number.
- ``events``: ``CircuitEvent``, the append-only log, with ``EventKind`` and ``AlertStatus``.
- ``deliveries``: ``AlertDelivery``, one alert of one event through one channel.
- ``maintenance``: ``MaintenanceWindow``, an announced downtime of a circuit.
"""

from resilience.models.bounds import BOUNDS
from resilience.models.deliveries import AlertDelivery
from resilience.models.events import AlertStatus, CircuitEvent, EventKind
from resilience.models.maintenance import MaintenanceWindow
from resilience.models.policy import BreakerPolicy, Mode
from resilience.revisions import SCHEDULE_FIELDS, PolicyRevision, RevisionSource

__all__ = [
    "BOUNDS",
    "SCHEDULE_FIELDS",
    "AlertDelivery",
    "AlertStatus",
    "BreakerPolicy",
    "CircuitEvent",
    "EventKind",
    "MaintenanceWindow",
    "Mode",
    "PolicyRevision",
    "RevisionSource",
]
