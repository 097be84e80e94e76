"""Policy revisions: every saved change of a ``BreakerPolicy`` with its actor, reason and field
diff, and the revert to any of them.

Why our own small model and not django-simple-history or django-reversion: both record only
through ``Model.save()`` signals (a ``QuerySet.update()`` — our kill-switch expiry, bulk
admin actions, users' own bulk edits — leaves no trace), neither validates the values it
restores (a revert writes values the form would refuse, or that no longer validate after an
upgrade), and reversion records only inside ``create_revision()`` blocks (a plain ``.save()``
in code is lost). docs/admin.md, "Policy revisions", has the full comparison.

The model sits in this module, below ``resilience.models``, which calls ``record`` and
``record_update`` from ``BreakerPolicy.save()`` and its ``QuerySet.update()``. The policy
model itself is reached through ``registry.model`` (bound by ``resilience.models``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from resilience import recorder
from resilience.policies import registry
from resilience.sanitize import one_line

__all__ = [
    "SCHEDULE_FIELDS",
    "PolicyRevision",
    "RevisionSource",
    "audit",
    "record",
    "record_update",
    "revert",
    "tracked_fields",
]

# Written only by the maintenance-window sweep (``MaintenanceWindow``), never by a full save.
SCHEDULE_FIELDS = frozenset({"window_mode", "window_next_at"})
# Not part of a revision: the name (state and events are keyed by it; it cannot be edited),
# bookkeeping, and the window sweep's fields (a window is its own row, with its own history).
UNTRACKED = frozenset({"id", "name", "version", "created_at", "updated_at", *SCHEDULE_FIELDS})
REASON_MAX = 2000


class RevisionSource(models.TextChoices):
    ADMIN = "admin", _("admin")
    COMMAND = "command", _("command line")
    CODE = "code", _("code")
    SCHEDULE = "schedule", _("schedule")
    INITIAL = "initial", _("values before the first recorded change")


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


def tracked_fields() -> list[models.Field]:
    """The policy fields a revision records and a revert restores."""
    return [f for f in registry.model._meta.concrete_fields if f.name not in UNTRACKED]


def plain(field: models.Field, value: Any) -> Any:
    """``value`` of ``field`` as stored in a revision: normalised (``30`` in a float field is
    ``30.0``), JSON-friendly (times in ISO 8601). A value the field refuses is kept as text."""
    try:
        value = field.to_python(value)
    except ValidationError:
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class PolicyRevision(models.Model):
    """One saved change of a policy: all its values after the change and what changed.

    Append-only. Kept when the policy is deleted (``policy`` is then empty; ``circuit`` says
    whose it was).
    """

    policy = models.ForeignKey(
        "resilience.BreakerPolicy",
        verbose_name=_("policy"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="revisions",
    )
    circuit = models.CharField(_("circuit"), max_length=100, db_index=True)
    version = models.PositiveIntegerField(
        _("policy version"), help_text=_("The policy's version after this change.")
    )
    source = models.CharField(
        _("source"), max_length=20, choices=RevisionSource.choices, default=RevisionSource.CODE
    )
    values = models.JSONField(_("values"), help_text=_("Every tracked field after the change."))
    changes = models.JSONField(
        _("changes"), default=dict, help_text=_("Field name: [before, after], for each change.")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField(_("reason"), blank=True)
    reverted_from = models.ForeignKey(
        "self",
        verbose_name=_("reverted to"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Set on a revert: the revision whose values it restored."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("policy revision")
        verbose_name_plural = _("policy revisions")
        indexes = [models.Index(fields=["policy", "-id"], name="resilience_revision_idx")]

    def __str__(self) -> str:
        return f"{self.circuit} #{self.pk} (version {self.version})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("PolicyRevision rows are append-only.")
        super().save(*args, **kwargs)

    def diff(self) -> list[tuple[str, str, str]]:
        """``[(label, before, after), ...]`` of this change, for people (the admin, the
        command line); bounded one-line texts."""
        labels = {f.name: str(f.verbose_name) for f in tracked_fields()}
        return [
            (labels.get(name, name), shown(pair[0]), shown(pair[1]))
            for name, pair in sorted(self.changes.items())
            if isinstance(pair, list | tuple) and len(pair) == 2
        ]

    def restored(self) -> dict[str, Any]:
        """The values a revert to this revision writes, converted back from JSON; a field
        added since is not in a revision and keeps its current value. ``ValidationError``
        naming the field when a stored value is no longer a valid value of its field."""
        result, errors = {}, {}
        for field in tracked_fields():
            if field.name not in self.values:
                continue
            try:
                result[field.name] = field.to_python(self.values[field.name])
            except ValidationError as exc:
                errors[field.name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return result


def shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    return one_line(str(value), 80)


# --- recording ------------------------------------------------------------------------------


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


# --- reverting ------------------------------------------------------------------------------


def revert(
    policy: Any,
    revision: Any,
    actor: Any = None,
    reason: str = "",
    source: str = "",
    frozen: Iterable[str] = (),
) -> PolicyRevision:
    """Give ``policy`` the values of ``revision`` (a ``PolicyRevision`` or its id), validated
    like a form edit, as a new revision; records a ``policy_changed`` event. Everything or
    nothing: ``ValidationError`` with a clear message, and nothing saved, when the revision is
    missing or another policy's, restores nothing new, or its values no longer validate (an
    exception path that no longer imports, a kill switch whose end has passed, ...).
    ``PermissionDenied`` (nothing saved) when it would change one of the ``frozen`` fields,
    compared with the values under the row lock (the admin freezes the mode and the kill
    switch's end for a user who may not force)."""
    revision = _own(policy, revision)
    target = revision.restored()
    with transaction.atomic():
        current = type(policy)._base_manager.select_for_update().get(pk=policy.pk)
        now = {f.name: plain(f, getattr(current, f.attname)) for f in tracked_fields()}
        if any(name in target and now.get(name) != revision.values[name] for name in frozen):
            raise PermissionDenied
        if all(now.get(name) == revision.values[name] for name in target):
            raise ValidationError(
                _("The policy already has the values of revision %(id)s: nothing to revert.")
                % {"id": revision.pk},
                code="unchanged",
            )
        for name, value in target.items():
            setattr(current, name, value)
        _validate(current)
        reason = str(reason or "")
        with audit(actor=actor, reason=reason, source=source, reverted_from=revision):
            current.save()
        made = current.revisions.order_by("-id").first()
        text = _("Reverted to revision %(id)s (version %(version)s): %(diff)s.") % {
            "id": revision.pk,
            "version": revision.version,
            "diff": "; ".join(f"{label}: {a} → {b}" for label, a, b in made.diff()),
        }
        recorder.record_action(
            current.name,
            "policy_changed",
            actor=actor,
            reason=f"{text} {_('Reason:')} {reason}" if reason else str(text),
        )
    policy.refresh_from_db()
    return made


def _own(policy: Any, revision: Any) -> PolicyRevision:
    if not isinstance(revision, PolicyRevision):
        found = PolicyRevision.objects.filter(pk=revision).first() if revision else None
        if found is None:
            raise ValidationError(
                _("There is no revision %(id)s.") % {"id": str(revision)[:40]}, code="missing"
            )
        revision = found
    if revision.policy_id != policy.pk:
        raise ValidationError(
            _("Revision %(id)s belongs to circuit %(other)s, not to %(name)s.")
            % {"id": revision.pk, "other": revision.circuit, "name": policy.name},
            code="other_policy",
        )
    return revision


def _validate(policy: Any) -> None:
    """The checks of a form edit, and a kill switch must still lie ahead."""
    policy.full_clean(validate_unique=False)
    until = policy.forced_until
    if until is not None and until <= registry.now():
        raise ValidationError(
            {
                "forced_until": _(
                    "The kill switch of this revision ended at %(until)s; force the circuit "
                    "open again instead."
                )
                % {"until": until.isoformat(timespec="seconds")}
            },
            code="expired",
        )
