"""Django admin registration for policies and the read-only event log."""

from django.contrib import admin

from resilience.models import BreakerPolicy, CircuitEvent


@admin.register(BreakerPolicy)
class BreakerPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "mode", "failure_threshold", "failure_rate_threshold", "critical")
    list_filter = ("mode", "critical")
    search_fields = ("name", "description")


@admin.register(CircuitEvent)
class CircuitEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "circuit", "kind", "from_state", "to_state", "alert_status")
    list_filter = ("kind", "alert_status", "created_at")
    search_fields = ("circuit",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
