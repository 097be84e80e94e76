"""The append-only log of what happened to circuits: ``CircuitEvent``, its kinds, alert states."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from resilience.models.policy import BreakerPolicy


class EventKind(models.TextChoices):
    OPENED = "opened", _("Opened")
    HALF_OPENED = "half_opened", _("Half-opened")
    CLOSED = "closed", _("Closed")
    RESET = "reset", _("Reset")
    FORCED_OPEN = "forced_open", _("Forced open")
    RELEASED = "released", _("Released")
    POLICY_CHANGED = "policy_changed", _("Policy changed")
    MAINTENANCE_STARTED = "maintenance_started", _("Maintenance started")
    MAINTENANCE_ENDED = "maintenance_ended", _("Maintenance ended")


class AlertStatus(models.TextChoices):
    NONE = "none", _("No alert")
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    SUPPRESSED = "suppressed", _("Suppressed (cooldown)")
    FAILED = "failed", _("Failed")


ALERT_FIELDS = frozenset({"alert_status", "alert_sent_at", "alert_attempts", "alert_claimed_at"})


class CircuitEvent(models.Model):
    """One state change or manual action; rows are never edited except their alert bookkeeping."""

    transition_id = models.CharField(
        _("transition id"),
        max_length=80,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text=_("Idempotency key: the same transition is stored once."),
    )
    circuit = models.CharField(_("circuit"), max_length=100, db_index=True)
    policy = models.ForeignKey(
        BreakerPolicy,
        verbose_name=_("policy"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    kind = models.CharField(_("kind"), max_length=20, choices=EventKind.choices)
    from_state = models.CharField(_("from state"), max_length=20, blank=True)
    to_state = models.CharField(_("to state"), max_length=20, blank=True)
    failure_count = models.PositiveIntegerField(_("failure count"), default=0)
    failure_rate = models.FloatField(_("failure rate (%)"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField(_("reason"), blank=True)
    origin = models.CharField(_("origin"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    alert_status = models.CharField(
        _("alert status"), max_length=20, choices=AlertStatus.choices, default=AlertStatus.NONE
    )
    alert_sent_at = models.DateTimeField(_("alert sent at"), null=True, blank=True)
    alert_attempts = models.PositiveIntegerField(_("alert attempts"), default=0)
    alert_claimed_at = models.DateTimeField(_("alert claimed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("circuit event")
        verbose_name_plural = _("circuit events")
        indexes = [
            models.Index(fields=["circuit", "-created_at"], name="resilience_event_circuit_idx"),
            models.Index(fields=["alert_status", "created_at"], name="resilience_event_alert_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.circuit}: {self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or not set(update_fields) <= ALERT_FIELDS:
                raise ValueError("CircuitEvent rows are append-only; only alert fields may change.")
        super().save(*args, **kwargs)
