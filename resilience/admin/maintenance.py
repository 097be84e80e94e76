"""Maintenance windows, inline on the policy page: validated one by one and as a whole."""

from __future__ import annotations

import itertools
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from resilience.models import MaintenanceWindow


class WindowFormSet(forms.BaseInlineFormSet):
    """Windows submitted together must not overlap each other either (each form's
    ``clean`` only sees the rows already saved)."""

    def clean(self) -> None:
        super().clean()
        spans = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or not (data.get("starts_at") and data.get("ends_at")):
                continue
            spans.append((data["starts_at"], data["ends_at"]))
        spans.sort()
        for (_start, end), (next_start, _end) in itertools.pairwise(spans):
            if next_start < end:
                raise ValidationError(_("Two of these maintenance windows overlap."))

    def save_new(self, form: Any, commit: bool = True) -> Any:
        window = super().save_new(form, commit=False)
        user = getattr(self, "request_user", None)
        if user is not None and user.is_authenticated:
            window.created_by = user
        if commit:
            window.save()
        return window


class MaintenanceWindowInline(admin.TabularInline):
    """Upcoming and past windows of the policy; the creator is recorded on save."""

    model = MaintenanceWindow
    formset = WindowFormSet
    extra = 0
    fields = ("starts_at", "ends_at", "mode", "reason", "status", "created_by")
    readonly_fields = ("status", "created_by")
    ordering = ("-starts_at",)
    verbose_name_plural = _("maintenance windows")

    @admin.display(description=_("status"))
    def status(self, obj: MaintenanceWindow) -> str:
        if obj.pk is None:
            return str(self.get_empty_value_display())
        if obj.ended:
            return str(_("over"))
        return str(_("in force") if obj.started else _("upcoming"))

    def get_formset(self, request: Any, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.request_user = request.user  # type: ignore[attr-defined]  # for save_new
        return formset
