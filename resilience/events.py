"""Transitions and manual actions become ``CircuitEvent`` rows exactly once, off the hot path."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from resilience import alerts, delivery, signals
from resilience.backends import get_backend
from resilience.conf import settings as conf
from resilience.engine import Transition
from resilience.models import AlertStatus, BreakerPolicy, CircuitEvent, EventKind
from resilience.sanitize import describe_error, one_line
from resilience.writer import BackgroundQueue

if TYPE_CHECKING:
    from django.dispatch import Signal

    from resilience.backends.base import Backend

__all__ = ["discard", "drain", "emit", "flush", "record_action"]

logger = logging.getLogger("resilience")

REASON_MAX = 2000
HTTP_PREFIX = "http:"  # per-host circuits of the HTTP adapters (resilience.contrib._http)
OUTBOX_BATCH = 100
# Keyed by the stored ``CircuitEvent.kind`` (a plain str; EventKind members are str too).
SIGNALS: dict[str, Signal] = {
    EventKind.OPENED: signals.circuit_opened,
    EventKind.HALF_OPENED: signals.circuit_half_opened,
    EventKind.CLOSED: signals.circuit_closed,
}

# Circuits that emitted in this process: drain() sweeps their outboxes even without a policy row.
_seen: set[str] = set()


@dataclass(frozen=True, slots=True)
class _Item:
    """A transition plus what only the emitting process knows about it."""

    transition: Transition
    error: str = ""
    actor_id: Any = None
    reason: str = ""


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
        _seen.add(circuit)
        text = describe_error(error)
        items = [
            _Item(t, text, getattr(actor, "pk", None), str(reason or "")[:REASON_MAX])
            for t in transitions
        ]
        for item in items:
            t = item.transition
            _log(circuit, t.kind, t, item.error, actor, item.reason)
        if sync:
            try:
                _store_and_notify(circuit, items, _dispatcher.put)
                return
            except Exception as exc:
                logger.warning(
                    "resilience: could not record %s events now, retrying in the background: %s",
                    one_line(circuit, 100),
                    describe_error(exc),
                )
        for item in items:
            _writer.put(item)
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
    _seen.add(circuit)
    reason = str(reason or "")[:REASON_MAX]
    actor_id = getattr(actor, "pk", None)
    # State changes are WARNINGs; a policy edit is routine.
    level = logging.INFO if kind == EventKind.POLICY_CHANGED else logging.WARNING
    _log(circuit, kind, transition, "", actor, reason, level)
    policy = BreakerPolicy.objects.filter(name=circuit).first()
    if transition is None:
        event = _new_event(
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
    item = _Item(transition, "", actor_id, reason)
    stored = _store(item, policy, kind=kind, from_state=from_state, to_state=to_state)
    if stored is None:
        return CircuitEvent.objects.get(transition_id=transition.id)
    transaction.on_commit(partial(_after_commit, circuit, [transition.id], [stored], None))
    return stored


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
    names = set(BreakerPolicy.objects.values_list("name", flat=True)) | _seen
    _sweep_backend(backend, names)  # its transitions wait in the outboxes swept below
    done = 0
    fresh: set[int] = set()
    for name in sorted(names):
        created = _drain_outbox(backend, name, None if limit is None else limit - done)
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
        _dispatch_now(event_id)
    if stored or ids:
        logger.info("resilience: drain stored %d event(s), re-queued %d alert(s)", stored, len(ids))
    return stored + len(ids)


def _sweep_backend(backend: Backend, names: set[str]) -> None:
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


def _drain_outbox(backend: Backend, name: str, budget: int | None) -> list[CircuitEvent]:
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
        created += _store_and_notify(name, [_Item(t) for t in batch], _dispatch_now)
    return created


def flush(timeout: float = 5.0) -> bool:
    """Wait until this process has stored every event and queued every alert; False on timeout."""
    deadline = time.monotonic() + timeout
    return _writer.flush(timeout) and _dispatcher.flush(max(0.0, deadline - time.monotonic()))


def discard(timeout: float = 10.0) -> None:
    """Drop whatever this process has not written or dispatched yet (tests; the sweeper
    recovers it), waiting at most ``timeout`` seconds per thread for a batch in hand to end."""
    _writer.discard(timeout)  # first: a batch it finishes may still hand alerts to the dispatcher
    _dispatcher.discard(timeout)


# --- storing --------------------------------------------------------------------------------


def _store_and_notify(circuit: str, items: list[_Item], dispatch: Any) -> list[CircuitEvent]:
    """Store one circuit's transitions; after commit: ack, signals, alerts. Returns new rows."""
    policy = BreakerPolicy.objects.filter(name=circuit).first()
    created = []
    for item in sorted(items, key=lambda i: (i.transition.at_ms, i.transition.generation)):
        event = _store(item, policy)
        if event is not None:
            created.append(event)
    ids = [item.transition.id for item in items]
    transaction.on_commit(partial(_after_commit, circuit, ids, created, dispatch))
    return created


def _store(item: _Item, policy: BreakerPolicy | None, **overrides: Any) -> CircuitEvent | None:
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
    event = _new_event(
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


def _new_event(circuit: str, policy: BreakerPolicy | None, **fields: Any) -> CircuitEvent:
    return CircuitEvent(
        circuit=circuit,
        policy=policy,
        origin=f"{socket.gethostname()}:{os.getpid()}"[:255],
        **fields,
    )


def _after_commit(circuit: str, ids: list[str], created: list[CircuitEvent], dispatch: Any) -> None:
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


def _log(
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


# --- background threads ----------------------------------------------------------------------


def _close_connections() -> None:
    # Connections are per thread: this closes only the calling background thread's own, so no
    # idle connection lingers (and a broken one is replaced on the next batch).
    connections.close_all()


def _write(items: list[_Item]) -> list[_Item]:
    by_circuit: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        by_circuit[item.transition.circuit].append(item)
    failed: list[_Item] = []
    for circuit, group in by_circuit.items():
        try:
            _store_and_notify(circuit, group, _dispatcher.put)
        except Exception as exc:  # database down: the transitions also wait in the outbox
            failed.extend(group)
            _writer.warn(
                "resilience: cannot store %d event(s) of %s yet, retrying: %s",
                len(group),
                circuit,
                describe_error(exc),
            )
            _close_connections()
    return failed


def _dispatch(event_ids: list[int]) -> list[int]:
    return [event_id for event_id in event_ids if not _dispatch_now(event_id)]


def _dispatch_now(event_id: int) -> bool:
    try:
        return delivery.dispatch(event_id)
    except Exception as exc:  # broker down, or database trouble while sending: try again later
        _dispatcher.warn(
            "resilience: cannot dispatch the alert of event %s yet: %s",
            event_id,
            describe_error(exc),
        )
        return False


_writer = BackgroundQueue("events", _write, on_idle=_close_connections)
# Separate thread: a hung broker or SMTP server delays alerts, never the recording of events.
_dispatcher = BackgroundQueue("alerts", _dispatch, on_idle=_close_connections)


@atexit.register
def _flush_at_exit() -> None:
    flush(timeout=2.0)
