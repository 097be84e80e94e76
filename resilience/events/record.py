"""Recording: transitions handed over by the call path, manual actions by operators."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import transaction

from resilience.engine import Transition
from resilience.events.log import log_event
from resilience.events.queues import dispatcher, writer
from resilience.events.store import Item, after_commit, new_event, store, store_and_notify
from resilience.models import BreakerPolicy, CircuitEvent, EventKind
from resilience.sanitize import describe_error, one_line

logger = logging.getLogger("resilience")

REASON_MAX = 2000

# Circuits that emitted in this process: drain() sweeps their outboxes even without a policy row.
seen: set[str] = set()


def emit(
    circuit: str,
    transitions: list[Transition],
    error: BaseException | None = None,
    actor: Any = None,
    reason: str = "",
    sync: bool = False,
) -> None:
    """Log each transition once and persist it as a ``CircuitEvent``; never raises.

    Without ``sync`` the row is written by a background thread on its own database connection
    (a rolled-back request cannot lose it) and this call never blocks. ``sync`` (manual actions)
    writes in the calling thread; the outbox is acknowledged only after that transaction commits.
    """
    try:
        if not transitions:
            return
        seen.add(circuit)
        text = describe_error(error)
        items = [
            Item(t, text, getattr(actor, "pk", None), str(reason or "")[:REASON_MAX])
            for t in transitions
        ]
        for item in items:
            t = item.transition
            log_event(circuit, t.kind, t, item.error, actor, item.reason)
        if sync:
            try:
                store_and_notify(circuit, items, dispatcher.put)
                return
            except Exception as exc:
                logger.warning(
                    "resilience: could not record %s events now, retrying in the background: %s",
                    one_line(circuit, 100),
                    describe_error(exc),
                )
        for item in items:
            writer.put(item)
    except Exception:  # the caller's protected call must never fail because of bookkeeping
        logger.exception("resilience: could not hand over transitions of %s", one_line(circuit))


def record_action(
    circuit: str,
    kind: str,
    *,
    actor: Any = None,
    reason: str = "",
    from_state: str = "",
    to_state: str = "",
    transition: Transition | None = None,
) -> CircuitEvent:
    """Record a manual action (reset, forced_open, released, policy_changed) synchronously.

    With ``transition`` (a reset performed on the backend) the row is keyed by its id, so the
    sweeper cannot store it a second time.
    """
    if kind not in EventKind.values:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {EventKind.values}")
    seen.add(circuit)
    reason = str(reason or "")[:REASON_MAX]
    actor_id = getattr(actor, "pk", None)
    # State changes are WARNINGs; a policy edit is routine.
    level = logging.INFO if kind == EventKind.POLICY_CHANGED else logging.WARNING
    log_event(circuit, kind, transition, "", actor, reason, level)
    policy = BreakerPolicy.objects.filter(name=circuit).first()
    if transition is None:
        event = new_event(
            circuit,
            policy,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            actor_id=actor_id,
            reason=reason,
        )
        event.save()
        return event
    item = Item(transition, "", actor_id, reason)
    stored = store(item, policy, kind=kind, from_state=from_state, to_state=to_state)
    if stored is None:
        return CircuitEvent.objects.get(transition_id=transition.id)
    transaction.on_commit(partial(after_commit, circuit, [transition.id], [stored], None))
    return stored
