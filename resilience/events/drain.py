"""The sweeper: scheduled mode changes, transitions left in the outboxes, overdue alerts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from resilience import delivery
from resilience.backends import get_backend
from resilience.conf import settings as conf
from resilience.events.queues import dispatch_now
from resilience.events.record import seen
from resilience.events.store import Item, store_and_notify
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.sanitize import describe_error

if TYPE_CHECKING:
    from resilience.backends.base import Backend

logger = logging.getLogger("resilience")

HTTP_PREFIX = "http:"  # per-host circuits of the HTTP adapters (resilience.contrib._http)
OUTBOX_BATCH = 100


def drain(limit: int | None = None) -> int:
    """Lift expired kill switches and start/end maintenance windows, persist transitions
    still waiting in backend outboxes, then re-queue lost alerts.

    Sweeps every circuit with a policy row or seen by this process; alerts still ``pending``
    after ``delivery.REDISPATCH_AFTER`` (unclaimed, or claimed by a sender that died) are
    dispatched again, here. Returns the number of events written plus alerts re-queued. Database
    errors propagate (the command or task fails and runs again later).
    """
    BreakerPolicy.run_schedule()  # kill switches and maintenance windows, even with no web up
    backend = get_backend()
    names = set(BreakerPolicy.objects.values_list("name", flat=True)) | seen
    sweep_backend(backend, names)  # its transitions wait in the outboxes swept below
    done = 0
    fresh: set[int] = set()
    for name in sorted(names):
        created = drain_outbox(backend, name, None if limit is None else limit - done)
        fresh.update(event.pk for event in created)
        done += len(created)
    stored = done
    # Alerts of events stored just now were dispatched with them; only older ones are re-queued.
    ids = [
        i
        for i in delivery.overdue(None if limit is None else max(0, limit - done))
        if i not in fresh
    ]
    for event_id in ids:
        dispatch_now(event_id)
    if stored or ids:
        logger.info("resilience: drain stored %d event(s), re-queued %d alert(s)", stored, len(ids))
    return stored + len(ids)


def sweep_backend(backend: Backend, names: set[str]) -> None:
    """Move quiet circuits past their open time to half-open (``Backend.advance``), and
    forget per-host HTTP circuits idle for ``IDLE_CIRCUIT_SECONDS`` (``Backend.retire``),
    also those no running process remembers. A failure is logged and left for next time."""
    try:
        index = backend.not_closed()
        opened = sorted(names) if index is None else [n for n, s in index.items() if s == "open"]
        backend.advance(opened)
        idle = conf.IDLE_CIRCUIT_SECONDS
        if idle:
            hosts = sorted(name for name in names if name.startswith(HTTP_PREFIX))
            backend.retire(hosts, int(idle * 1000))
    except Exception as exc:
        logger.warning("resilience: cannot sweep circuit states: %s", describe_error(exc))


def drain_outbox(backend: Backend, name: str, budget: int | None) -> list[CircuitEvent]:
    """Store what waits in the outbox of circuit ``name``, at most ``budget`` events (None: all);
    returns the rows created. An outbox that cannot be read is logged and left for next time."""
    handled: set[str] = set()
    created: list[CircuitEvent] = []
    while budget is None or len(created) < budget:
        size = OUTBOX_BATCH if budget is None else min(OUTBOX_BATCH, budget - len(created))
        try:
            batch = [t for t in backend.outbox(name, size) if t.id not in handled]
        except Exception as exc:
            logger.warning(
                "resilience: cannot read the outbox of %s: %s", name, describe_error(exc)
            )
            break
        if not batch:  # empty, or only ids this sweep already stored (their ack failed)
            break
        handled.update(t.id for t in batch)
        created += store_and_notify(name, [Item(t) for t in batch], dispatch_now)
    return created
