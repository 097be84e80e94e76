"""Recording revisions: every save and ``QuerySet.update()`` of a policy that changes a tracked
field, by the actor and for the reason ``audit()`` gives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.utils import timezone

from resilience.revisions.model import (
    REASON_MAX,
    PolicyRevision,
    RevisionSource,
    plain,
    tracked_fields,
)

# Who is changing policies in this context and why: ``audit()`` sets it; saves read it.
_context: ContextVar[dict[str, Any] | None] = ContextVar("resilience_revision", default=None)


@contextlib.contextmanager
def audit(
    actor: Any = None, reason: str = "", source: str = "", reverted_from: Any = None
) -> Iterator[None]:
    """Policy changes saved inside are revisions by ``actor``, for ``reason``, from ``source``
    (a ``RevisionSource``; default ``code``). Nested blocks inherit what they do not give."""
    given = {"actor": actor, "reason": reason, "source": source, "reverted_from": reverted_from}
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in given.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def _values(policy: Any) -> dict[str, Any]:
    return {f.name: plain(f, getattr(policy, f.attname)) for f in tracked_fields()}


def _stored(queryset: Any) -> dict[int, dict[str, Any]]:
    """``{pk: {"name", "version", "updated_at", field: plain value, ...}}`` of the rows."""
    fields = tracked_fields()
    rows = queryset.values("pk", "name", "version", "updated_at", *(f.attname for f in fields))
    return {
        row["pk"]: {**row, **{f.name: plain(f, row[f.attname]) for f in fields}} for row in rows
    }


def before_save(policy: Any, using: str | None = None) -> dict[str, Any] | None:
    """The stored values of ``policy`` before a save (None: a new row), the row locked where
    the database can, so that a save committing meanwhile is in the diff and in the values."""
    if policy.pk is None or policy._state.adding:
        return None
    return _stored(_locked(type(policy)._base_manager.using(using).filter(pk=policy.pk))).get(
        policy.pk
    )


def _locked(queryset: Any) -> Any:
    """``queryset.select_for_update()`` where its database has row locks (inside a
    transaction), else ``queryset``."""
    locked = queryset.select_for_update()
    return (
        locked if transaction.get_connection(locked.db).features.has_select_for_update else queryset
    )


def record(policy: Any, before: dict[str, Any] | None, update_fields: Any = None) -> None:
    """Record the save of ``policy`` (just written, in the same transaction) as a revision,
    if it changed anything tracked. ``before``: from ``before_save``."""
    after = _values(policy)
    if before is not None and update_fields is not None:  # the others kept their stored values
        after = {
            name: value if name in update_fields else before[name] for name, value in after.items()
        }
    _new(policy.pk, policy.name, policy.version, before, after)


def stored_before_update(queryset: Any, fields: Any) -> dict[int, dict[str, Any]] | None:
    """The rows a ``QuerySet.update()`` of ``fields`` is about to change, locked where the
    database can (None: no tracked field is updated, nothing to record)."""
    if not {f.name for f in tracked_fields()}.intersection(fields):
        return None
    return _stored(_locked(queryset))


def record_update(model: Any, before: dict[int, dict[str, Any]]) -> None:
    """Record a ``QuerySet.update()`` (just run, in the same transaction) of the rows read by
    ``stored_before_update``: one revision per row that changed."""
    after = _stored(model._base_manager.filter(pk__in=list(before)))
    for pk, row in after.items():
        values = {f.name: row[f.name] for f in tracked_fields()}
        _new(pk, row["name"], row["version"], before[pk], values)


def _new(
    pk: int, name: str, version: int, before: dict[str, Any] | None, after: dict[str, Any]
) -> PolicyRevision | None:
    context = _context.get() or {}
    if before is None:
        changes: dict[str, list[Any]] = {}
    else:
        changes = {k: [before[k], v] for k, v in after.items() if before.get(k) != v}
        if not changes:
            return None
        if not PolicyRevision.objects.filter(policy_id=pk).exists():
            # The row was made without a revision (bulk-created for a circuit first used in
            # code, or before revisions existed): keep the values it had, so it can go back.
            PolicyRevision.objects.create(
                policy_id=pk,
                circuit=name,
                version=before["version"],
                source=RevisionSource.INITIAL,
                values={k: before[k] for k in after},
                created_at=before["updated_at"] or timezone.now(),
            )
    actor = context.get("actor")
    return PolicyRevision.objects.create(
        policy_id=pk,
        circuit=name,
        version=version,
        source=context.get("source") or RevisionSource.CODE,
        values=after,
        changes=changes,
        actor_id=getattr(actor, "pk", None),
        reason=str(context.get("reason") or "")[:REASON_MAX],
        reverted_from=context.get("reverted_from"),
    )
