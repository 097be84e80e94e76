"""A transition stored as a ``CircuitEvent`` row, once; after commit: ack, signals, alerts."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from resilience import alerts, delivery, signals
from resilience.backends import get_backend
from resilience.engine import Transition
from resilience.models import AlertStatus, BreakerPolicy, CircuitEvent, EventKind
from resilience.sanitize import describe_error

if TYPE_CHECKING:
    from django.dispatch import Signal

logger = logging.getLogger("resilience")

# Keyed by the stored ``CircuitEvent.kind`` (a plain str; EventKind members are str too).
SIGNALS: dict[str, Signal] = {
    EventKind.OPENED: signals.circuit_opened,
    EventKind.HALF_OPENED: signals.circuit_half_opened,
    EventKind.CLOSED: signals.circuit_closed,
}


@dataclass(frozen=True, slots=True)
class Item:
    """A transition plus what only the emitting process knows about it."""

    transition: Transition
    error: str = ""
    actor_id: Any = None
    reason: str = ""


def store_and_notify(circuit: str, items: list[Item], dispatch: Any) -> list[CircuitEvent]:
    """Store one circuit's transitions; after commit: ack, signals, alerts. Returns new rows."""
    policy = BreakerPolicy.objects.filter(name=circuit).first()
    created = []
    for item in sorted(items, key=lambda i: (i.transition.at_ms, i.transition.generation)):
        event = store(item, policy)
        if event is not None:
            created.append(event)
    ids = [item.transition.id for item in items]
    transaction.on_commit(partial(after_commit, circuit, ids, created, dispatch))
    return created


def store(item: Item, policy: BreakerPolicy | None, **overrides: Any) -> CircuitEvent | None:
    """Insert the event of one transition; None when it is already stored (idempotent)."""
    t = item.transition
    if CircuitEvent.objects.filter(transition_id=t.id).exists():
        return None
    values = {
        "kind": t.kind,
        "from_state": t.from_state,
        "to_state": t.to_state,
        **{key: value for key, value in overrides.items() if value},
    }
    event = new_event(
        t.circuit,
        policy,
        transition_id=t.id,
        failure_count=t.failure_count,
        failure_rate=t.failure_rate,
        error=item.error,
        actor_id=item.actor_id,
        reason=item.reason,
        created_at=_datetime(t.at_ms),
        **values,
    )
    rules = policy or BreakerPolicy.from_settings(t.circuit)
    try:
        with transaction.atomic():
            if policy is not None and connection.features.has_select_for_update:
                # One alert decision per circuit at a time: two processes storing openings of
                # the same circuit (e.g. both on ON_BACKEND_ERROR="local") cannot both alert.
                list(BreakerPolicy.objects.select_for_update().filter(pk=policy.pk).values("pk"))
            # Write first, decide after: SQLite then serialises the decision too (a transaction
            # that reads before writing fails at once with "database is locked" instead).
            event.save()
            status = alerts.initial_status(event, rules)
            if status == AlertStatus.PENDING:  # one delivery per channel, in this transaction
                status = delivery.plan(event)
            if status != AlertStatus.NONE:
                event.alert_status = status
                event.save(update_fields=["alert_status"])
    except IntegrityError:  # another process stored the same transition a moment ago
        return None
    return event


def new_event(circuit: str, policy: BreakerPolicy | None, **fields: Any) -> CircuitEvent:
    return CircuitEvent(
        circuit=circuit,
        policy=policy,
        origin=f"{socket.gethostname()}:{os.getpid()}"[:255],
        **fields,
    )


def after_commit(circuit: str, ids: list[str], created: list[CircuitEvent], dispatch: Any) -> None:
    try:
        get_backend().ack(circuit, ids)
    except Exception as exc:  # stays in the outbox; the sweeper finds the rows and acks again
        logger.warning(
            "resilience: cannot acknowledge transitions of %s: %s", circuit, describe_error(exc)
        )
    for event in created:
        signal = SIGNALS.get(event.kind)
        if signal is not None:
            for receiver, result in signal.send_robust(sender=CircuitEvent, event=event):
                if isinstance(result, Exception):
                    logger.error(
                        "resilience: %r failed on %s: %s", receiver, event, describe_error(result)
                    )
        if dispatch is not None and event.alert_status == AlertStatus.PENDING:
            dispatch(event.pk)


def _datetime(at_ms: int) -> datetime:
    value = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)
