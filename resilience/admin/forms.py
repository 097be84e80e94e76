"""The policy form: fieldsets with units, an audit reason, and a summary of what an edit changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.utils import flatten_fieldsets
from django.utils.translation import gettext_lazy as _

from resilience.models import BreakerPolicy
from resilience.sanitize import one_line

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec

FIELDSETS: _FieldsetSpec = (
    (None, {"fields": ("name", "description", "mode", "critical")}),
    (
        _("Trip rules"),
        {
            "description": _("Either rule opens the circuit; 0 turns a rule off."),
            "fields": (
                "failure_threshold",
                "failure_rate_threshold",
                "window_seconds",
                "minimum_calls",
                "slow_call_ms",
            ),
        },
    ),
    (
        _("Isolation"),
        {
            "description": _(
                "Keep a hanging upstream from holding every worker: a cap on calls in flight "
                "(all processes) and a deadline per call; 0 turns either off."
            ),
            "fields": ("max_concurrent_calls", "call_timeout_ms"),
        },
    ),
    (
        _("Recovery"),
        {
            "description": _(
                "How long the circuit stays open, and how trial calls close it again."
            ),
            "fields": (
                "recovery_timeout",
                "backoff_multiplier",
                "max_recovery_timeout",
                "half_open_max_calls",
                "success_threshold",
            ),
        },
    ),
    (
        _("Exceptions"),
        {
            "description": _("Which exceptions count as failures of this circuit."),
            "fields": ("ignore_exceptions", "record_exceptions"),
        },
    ),
    (
        _("Retries"),
        {
            "description": _("Retries run inside the breaker: one logical call, one outcome."),
            "fields": ("retry_attempts", "retry_backoff_ms", "retry_max_backoff_ms"),
        },
    ),
    (
        _("Alerts"),
        {
            "fields": (
                "alert_on_open",
                "alert_on_recovery",
                "alert_recipients",
                "alert_cooldown_seconds",
            )
        },
    ),
    (_("Audit"), {"fields": ("change_reason",)}),
)


class BreakerPolicyForm(forms.ModelForm):
    change_reason = forms.CharField(
        label=_("Reason for this change"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=_("Optional; kept in the history and in the circuit's events."),
    )

    class Meta:
        model = BreakerPolicy
        fields = [name for name in flatten_fieldsets(FIELDSETS) if name != "change_reason"]


class PreviewForm(forms.ModelForm):
    """A policy form posted by the change page's Preview button: validated exactly as for
    saving (field and model validation, ``previewable`` tells the result), but never valid to
    the admin, which saves only a valid form, so the values it holds are shown, never stored."""

    previewable = False

    def is_valid(self) -> bool:
        self.previewable = super().is_valid()
        return False


def preview_form(form: type[forms.ModelForm]) -> type[forms.ModelForm]:
    """``form`` (the admin's form class for this request) as a ``PreviewForm``."""
    return type(f"Preview{form.__name__}", (PreviewForm, form), {})


def change_summary(form: forms.ModelForm) -> list[str]:
    """``["failure threshold: 5 → 2", ...]`` for the fields an edit changed."""
    return [
        f"{form.fields[name].label or name}: {_shown(form.initial.get(name))} → "
        f"{_shown(form.cleaned_data.get(name))}"
        for name in form.changed_data
        if name != "change_reason"
    ]


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "-"  # the admin's empty value
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    return one_line(str(value), 80)


def audit_text(summary: list[str], reason: str, add: bool) -> str:
    text = str(_("Created.")) if add else f"{_('Changed')} {'; '.join(summary)}."
    return f"{text} {_('Reason:')} {reason}" if reason else text
