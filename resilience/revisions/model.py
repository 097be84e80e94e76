"""The ``PolicyRevision`` model: one saved change of a policy, its values and its diff."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from resilience.policies import registry
from resilience.sanitize import one_line

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
