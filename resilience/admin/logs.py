"""What the admin's two logs (circuit events, policy revisions) share: read-only rows, each
linked to its policy's page, filtered by circuit with ``?circuit=``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _


class ReadOnlyLog(admin.ModelAdmin):
    """Rows written by the app, never added, changed or deleted by hand; ``circuit_link``
    points at the row's policy (and at ``policy_anchor`` on its page)."""

    policy_anchor = ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("circuit"), ordering="circuit")
    def circuit_link(self, obj: Any) -> str:
        if obj.policy_id is None:
            return obj.circuit
        url = reverse(
            "admin:resilience_breakerpolicy_change",
            args=[quote(obj.policy_id)],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}{}">{}</a>', url, self.policy_anchor, obj.circuit)


class CircuitParameter(admin.SimpleListFilter):
    """``?circuit=name`` filters the log; ``lookups`` (a subclass's) offers circuits."""

    title = _("circuit")
    parameter_name = "circuit"

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(circuit=value) if value else queryset
