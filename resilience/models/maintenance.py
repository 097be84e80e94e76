"""``MaintenanceWindow``: a provider's announced downtime, during which a circuit runs in
another mode; started and ended by ``BreakerPolicy.apply_windows``."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from resilience import recorder
from resilience.compat import check_constraint
from resilience.models.events import EventKind
from resilience.models.policy import BreakerPolicy, Mode

WINDOW_MODES = (Mode.FORCED_OPEN, Mode.MONITOR, Mode.DISABLED)


class MaintenanceWindow(models.Model):
    """A provider's announced downtime: the circuit runs in ``mode`` from ``starts_at`` to
    ``ends_at``. Windows of one policy never overlap (``clean``; the admin checks a whole
    inline submission too)."""

    policy = models.ForeignKey(
        BreakerPolicy,
        verbose_name=_("policy"),
        on_delete=models.CASCADE,
        related_name="maintenance_windows",
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    mode = models.CharField(
        _("mode"),
        max_length=20,
        choices=[(m.value, m.label) for m in WINDOW_MODES],
        default=Mode.MONITOR,
        help_text=_("How the circuit runs during the window."),
    )
    reason = models.TextField(_("reason"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started = models.BooleanField(_("started"), default=False, editable=False)
    ended = models.BooleanField(_("ended"), default=False, editable=False)

    class Meta:
        ordering = ["policy", "starts_at"]
        verbose_name = _("maintenance window")
        verbose_name_plural = _("maintenance windows")
        indexes = [models.Index(fields=["policy", "starts_at"], name="resilience_window_idx")]
        constraints = [
            check_constraint(Q(ends_at__gt=F("starts_at")), "resilience_window_ends_after_start"),
            check_constraint(
                Q(mode__in=[m.value for m in WINDOW_MODES]), "resilience_window_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id}: {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        self.policy.reschedule_windows()

    def delete(self, *args, **kwargs):
        if self.started and not self.ended:  # deleted while in force: it ends now
            self.end(self.policy.name, reason=str(_("window deleted")))
        result = super().delete(*args, **kwargs)
        self.policy.reschedule_windows()
        return result

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": _("The window must end after it starts.")})
        if self.policy_id and self.starts_at and self.ends_at:
            clash = self.overlapping(self.policy.maintenance_windows.exclude(pk=self.pk)).first()
            if clash is not None:
                raise ValidationError(
                    _("Overlaps the window from %(start)s to %(end)s of this policy.")
                    % {"start": clash.starts_at.isoformat(), "end": clash.ends_at.isoformat()}
                )

    def overlapping(self, windows: models.QuerySet) -> models.QuerySet:
        """The windows of ``windows`` sharing a moment with this one (touching ends do not)."""
        return windows.filter(starts_at__lt=self.ends_at, ends_at__gt=self.starts_at)

    def start(self, name: str) -> int:
        """Put the window in force for circuit ``name``: 1, or 0 when another process did."""
        with transaction.atomic():
            if not MaintenanceWindow.objects.filter(pk=self.pk, started=False).update(started=True):
                return 0  # another process started it a moment ago
            BreakerPolicy.objects.filter(pk=self.policy_id).update(window_mode=self.mode)
            recorder.record_action(
                name,
                EventKind.MAINTENANCE_STARTED,
                reason=f"{self.reason} [{self.mode} until {self.ends_at.isoformat()}]".strip(),
                from_state=Mode.ENFORCED,
                to_state=self.mode,
            )
        self.started = True
        return 1

    def end(self, name: str, reason: str = "") -> int:
        """End the window for circuit ``name``: 1, or 0 when another process did."""
        with transaction.atomic():
            if not MaintenanceWindow.objects.filter(pk=self.pk, ended=False).update(ended=True):
                return 0
            if not self.started:
                return 1  # over before anyone started it: nothing was in force
            BreakerPolicy.objects.filter(pk=self.policy_id).update(window_mode="")
            recorder.record_action(
                name,
                EventKind.MAINTENANCE_ENDED,
                reason=reason or self.reason,
                from_state=self.mode,
                to_state=Mode.ENFORCED,
            )
        self.ended = True
        return 1
