"""The read-only ``CircuitEvent`` admin: hostile text is escaped and truncated everywhere."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.defaultfilters import linebreaksbr
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from resilience.admin.logs import CircuitParameter, ReadOnlyLog
from resilience.models import AlertDelivery, CircuitEvent
from resilience.sanitize import one_line

LIST_CHARS = 120  # error/reason in the list: one line
DETAIL_CHARS = 4000  # error/reason on the detail page; the rest is counted, not shown
CIRCUIT_CHOICES = 50


def clipped(text: str, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters of ``text`` and how many were left out."""
    text = text or ""
    return text[:limit], max(0, len(text) - limit)


class CircuitFilter(CircuitParameter):
    """Circuits with events in the last week (bounded); any ``?circuit=`` value still filters."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        since = timezone.now() - timedelta(days=7)
        names = list(
            CircuitEvent.objects.filter(created_at__gte=since)
            .order_by("circuit")
            .values_list("circuit", flat=True)
            .distinct()[:CIRCUIT_CHOICES]
        )
        value = self.value()
        if value and value not in names:
            names.insert(0, value)
        return [(name, name) for name in names]


class AlertDeliveryInline(admin.TabularInline):
    """The event's alert, channel by channel: status, attempts, the last error (read-only)."""

    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = ("channel", "status", "attempts", "sent_at", "claimed_at", "error_cell")
    readonly_fields = fields
    verbose_name_plural = _("alert deliveries (one per channel)")

    # Whoever may view the event sees how its alert went; nobody edits a delivery by hand.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("resilience.view_circuitevent")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("last error"))
    def error_cell(self, obj: AlertDelivery) -> str:
        return _one_line_cell(obj.last_error) or self.get_empty_value_display()


@admin.register(CircuitEvent)
class CircuitEventAdmin(ReadOnlyLog):
    list_display = (
        "created_at",
        "circuit_link",
        "kind",
        "transition",
        "failure_count",
        "short_error",
        "actor",
        "short_reason",
        "alert_status",
    )
    list_filter = (CircuitFilter, "kind", "alert_status", "created_at")
    list_select_related = ("policy", "actor")
    search_fields = ("circuit",)
    date_hierarchy = "created_at"
    fields = (
        "circuit_link",
        "kind",
        "transition",
        "failure_count",
        "failure_rate",
        "error_text",
        "actor",
        "reason_text",
        "origin",
        "created_at",
        "transition_id",
        "alert_status",
        "alert_sent_at",
        "alert_attempts",
    )
    readonly_fields = fields
    inlines = (AlertDeliveryInline,)

    class Media:
        css = {"all": ("resilience/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("policy", "actor")

    # Also read-only fields of the detail page, where Django does not fill in its empty value.

    @admin.display(description=_("change"))
    def transition(self, obj: CircuitEvent) -> str:
        if not (obj.from_state or obj.to_state):
            return str(self.get_empty_value_display())
        return f"{obj.from_state or '?'} → {obj.to_state or '?'}"

    @admin.display(description=_("last error"))
    def short_error(self, obj: CircuitEvent) -> str:
        return _one_line_cell(obj.error)

    @admin.display(description=_("reason"))
    def short_reason(self, obj: CircuitEvent) -> str:
        return _one_line_cell(obj.reason)

    @admin.display(description=_("last error"))
    def error_text(self, obj: CircuitEvent) -> str:
        return _detail(obj.error) or self.get_empty_value_display()

    @admin.display(description=_("reason"))
    def reason_text(self, obj: CircuitEvent) -> str:
        return _detail(obj.reason) or self.get_empty_value_display()


def _one_line_cell(text: str) -> str:
    """List cells: empty (the admin's empty value) or one clipped line, the rest on hover."""
    if not text:
        return ""
    head, _rest = clipped(text, LIST_CHARS * 4)
    return format_html(
        '<span class="rs-clip" title="{}">{}</span>',
        one_line(head, 500),
        one_line(head, LIST_CHARS),
    )


def _detail(text: str) -> str:
    if not text:
        return ""
    head, rest = clipped(text, DETAIL_CHARS)
    if not rest:
        return linebreaksbr(head, autoescape=True)
    return format_html(
        '{}<br><em class="rs-clipped">{}</em>',
        linebreaksbr(head, autoescape=True),
        _("… %(count)d more characters not shown") % {"count": rest},
    )
