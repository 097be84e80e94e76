"""What-if: a circuit's recorded history replayed under a changed policy, next to what happened
(``manage.py resilience replay``, the admin's Preview)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext as _

from resilience import replay
from resilience.decorators import breaker
from resilience.engine_types import Policy
from resilience.models import BreakerPolicy, CircuitEvent, EventKind, Mode
from resilience.policies import ResolvedPolicy

DEFAULT_HOURS = 1.0
STATE_KINDS = (EventKind.OPENED, EventKind.HALF_OPENED, EventKind.CLOSED, EventKind.RESET)
KILL_KINDS = (EventKind.FORCED_OPEN, EventKind.RELEASED)
MAINTENANCE_KINDS = (EventKind.MAINTENANCE_STARTED, EventKind.MAINTENANCE_ENDED)


def settable_fields() -> list[str]:
    """The policy fields ``--set`` may change: every field an operator edits, but the name."""
    return [
        f.name
        for f in BreakerPolicy._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in ("name", "created_at", "updated_at")
    ]


def with_values(row: BreakerPolicy, values: dict[str, str]) -> BreakerPolicy:
    """An unsaved copy of ``row`` with ``values`` (field name -> text as typed), judged by the
    model's own validation (``clean_fields``, ``clean``): ``ValidationError`` per field. The
    row itself is left as it is."""
    allowed = settable_fields()
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValidationError(
            {
                name[:100]: _("Unknown policy field; one of: %(fields)s.")
                % {"fields": ", ".join(allowed)}
                for name in unknown
            }
        )
    proposed = copy.copy(row)
    for name, text in values.items():
        setattr(proposed, name, text)  # no foreign keys among them: the name is the attname
    proposed.clean_fields(exclude=["name"])
    proposed.clean()
    return proposed


@dataclass(frozen=True)
class Preview:
    """A replay's report (the JSON of ``manage.py resilience replay``) and its period."""

    report: dict[str, Any]
    start: datetime | None
    end: datetime | None
    bucket_seconds: int


def preview(
    row: BreakerPolicy, proposed: BreakerPolicy, hours: float, max_steps: int | None = None
) -> Preview:
    """Replay the last ``hours`` of ``row``'s circuit under ``proposed`` (``with_values``, or a
    form's instance). ``TypeError``/``ValueError`` for ``hours`` outside (0, 168];
    ``replay.ReplayTooLarge`` past ``max_steps`` engine steps per policy."""
    buckets = breaker(row.name).history(minutes=hours * 60)
    start = buckets[0]["start"] if buckets else None
    end = None
    if buckets:
        last = buckets[-1]
        end = datetime.fromtimestamp(last["start"].timestamp() + last["seconds"], tz=UTC)
    changes = _changes(row.name, start, end) if start and end else []
    result = replay.replay(buckets, changes, _engine(row), _engine(proposed), max_steps)
    changed = {
        name: getattr(proposed, name)
        for name in settable_fields()
        if getattr(proposed, name) != getattr(row, name)
    }
    result["proposed"]["changed"] = changed
    result["proposed"]["not_replayed"] = sorted(set(changed) - set(replay.REPLAYED_FIELDS))
    hours_shown: float | int = int(hours) if float(hours).is_integer() else hours
    report = {"circuit": row.name, "hours": hours_shown, **result}
    seconds = int(buckets[0]["seconds"]) if buckets else 0
    return Preview(report, start, end, seconds)


def _engine(row: BreakerPolicy) -> Policy:
    return ResolvedPolicy.from_row(row).policy


def _changes(name: str, start: datetime, end: datetime) -> list[replay.Change]:
    """The circuit's transitions and kill switches in [start, end), after the last of each
    before ``start`` (its state and kill switch when the period starts)."""
    events = CircuitEvent.objects.filter(circuit=name)
    kill = Q(kind__in=KILL_KINDS) | Q(kind=EventKind.MAINTENANCE_STARTED, to_state=Mode.FORCED_OPEN)
    kill |= Q(kind=EventKind.MAINTENANCE_ENDED, from_state=Mode.FORCED_OPEN)
    columns = ("created_at", "kind", "from_state", "to_state", "transition_id", "id")
    found = []
    for kinds in (Q(kind__in=STATE_KINDS), kill):
        before = events.filter(kinds, created_at__lt=start).order_by("-created_at", "-id")
        found += list(before.values_list(*columns)[:1])
    inside = events.filter(
        Q(kind__in=STATE_KINDS) | kill, created_at__gte=start, created_at__lt=end
    ).values_list(*columns)
    found += list(inside)
    found.sort(key=lambda row: (row[0], _generation(row[4]), row[5]))
    return [_change(*row[:4]) for row in found]


def _generation(transition_id: str | None) -> int:
    """Orders a trial's ``half_opened`` and ``opened`` of the same millisecond."""
    _, _, generation = (transition_id or "").rpartition(":")
    return int(generation) if generation.isdigit() else 0


def _change(at: datetime, kind: str, from_state: str, to_state: str) -> replay.Change:
    if kind == EventKind.MAINTENANCE_STARTED:
        kind = EventKind.FORCED_OPEN
    elif kind == EventKind.MAINTENANCE_ENDED:
        kind = EventKind.RELEASED
    return replay.Change(round(at.timestamp() * 1000), str(kind), from_state)
