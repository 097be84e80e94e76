"""Policy revisions: every saved change of a ``BreakerPolicy`` with its actor, reason and field
diff, and the revert to any of them.

Why our own small model and not django-simple-history or django-reversion: both record only
through ``Model.save()`` signals (a ``QuerySet.update()`` — our kill-switch expiry, bulk
admin actions, users' own bulk edits — leaves no trace), neither validates the values it
restores (a revert writes values the form would refuse, or that no longer validate after an
upgrade), and reversion records only inside ``create_revision()`` blocks (a plain ``.save()``
in code is lost). docs/admin.md, "Policy revisions", has the full comparison.

The model sits in this package (``model``; ``recording`` and ``reverting`` beside it), below
``resilience.models``, which calls ``record`` and ``record_update`` from
``BreakerPolicy.save()`` and its ``QuerySet.update()``. The policy
model itself is reached through ``registry.model`` (bound by ``resilience.models``).
"""

from resilience.revisions.model import (
    REASON_MAX,
    SCHEDULE_FIELDS,
    UNTRACKED,
    PolicyRevision,
    RevisionSource,
    plain,
    shown,
    tracked_fields,
)
from resilience.revisions.recording import (
    audit,
    before_save,
    record,
    record_update,
    stored_before_update,
)
from resilience.revisions.reverting import revert

__all__ = [
    "REASON_MAX",
    "SCHEDULE_FIELDS",
    "UNTRACKED",
    "PolicyRevision",
    "RevisionSource",
    "audit",
    "before_save",
    "plain",
    "record",
    "record_update",
    "revert",
    "shown",
    "stored_before_update",
    "tracked_fields",
]
