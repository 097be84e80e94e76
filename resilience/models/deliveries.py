"""``AlertDelivery``: the alert of one event through one channel, with its own status."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from resilience.models.events import AlertStatus, CircuitEvent


class AlertDelivery(models.Model):
    """The alert of one event through one channel: its own status, attempts and claim.

    Created with the event's alert decision (one row per configured channel, at most one per
    channel: the unique constraint), so a channel that is down never holds up another.
    """

    event = models.ForeignKey(
        CircuitEvent, verbose_name=_("event"), on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(_("channel"), max_length=50)
    status = models.CharField(
        _("status"), max_length=20, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["event", "id"]
        verbose_name = _("alert delivery")
        verbose_name_plural = _("alert deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["event", "channel"], name="resilience_delivery_once_per_channel"
            )
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="resilience_dlv_status_idx"),
            models.Index(fields=["channel", "status"], name="resilience_dlv_channel_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} via {self.channel}: {self.status}"
