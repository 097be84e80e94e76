"""The ``BreakerPolicy`` admin: audited edits and the change page (its live panel and controls);
the changelist and the Preview are mixins of their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from resilience import compat, events
from resilience.admin import timeline
from resilience.admin.changelist import (
    MODE_NAMES,
    ChangelistMixin,
    LiveChangeList,
    LiveStateFilter,
    Overview,
)
from resilience.admin.control import CircuitControlMixin, ReasonForm
from resilience.admin.forms import (
    FIELDSETS,
    BreakerPolicyForm,
    audit_text,
    change_summary,
)
from resilience.admin.live import (
    LABELS,
    POLICY_COLUMNS,
    UNKNOWN,
    Live,
    ago,
    badge,
    consecutive,
    failure_rate,
    fetch,
    in_flight,
    next_trial,
)
from resilience.admin.maintenance import MaintenanceWindowInline
from resilience.admin.outcomes import OutcomesMixin
from resilience.admin.preview import (
    PREVIEW,
    PREVIEW_CHOICES,
    PREVIEW_HOURS,
    PREVIEW_MAX_STEPS,
    PREVIEW_ROWS,
    PreviewMixin,
    preview_context,
)
from resilience.admin.revisions import RevisionMixin
from resilience.conf import settings as conf
from resilience.engine_types import ENFORCED, FORCED_OPEN
from resilience.models import BreakerPolicy, CircuitEvent, EventKind, RevisionSource

__all__ = [
    "MODE_NAMES",
    "PREVIEW",
    "PREVIEW_CHOICES",
    "PREVIEW_HOURS",
    "PREVIEW_MAX_STEPS",
    "PREVIEW_ROWS",
    "RECENT_EVENTS",
    "BreakerPolicyAdmin",
    "LiveChangeList",
    "LiveStateFilter",
    "Overview",
]

RECENT_EVENTS = 20


@admin.register(BreakerPolicy)
class BreakerPolicyAdmin(
    ChangelistMixin,
    PreviewMixin,
    RevisionMixin,
    OutcomesMixin,
    CircuitControlMixin,
    admin.ModelAdmin,
):
    form = BreakerPolicyForm
    list_display = (
        "circuit_name",
        "state_badge",
        "consecutive_failures",
        "failure_rate",
        "last_hour",
        "calls_in_flight",
        "last_transition",
        "mode_name",
        "critical_flag",
    )
    list_filter = (LiveStateFilter, "mode", "critical")
    search_fields = ("name", "description")
    list_per_page = 100
    fieldsets = FIELDSETS
    inlines = (MaintenanceWindowInline,)

    class Media:
        css = {"all": ("resilience/admin.css", "resilience/charts.css")}
        js = ("resilience/charts.js",)

    # --- change page --------------------------------------------------------------------------

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("name")  # state and events are keyed by the name used in code
        if not self.has_force_permission(request, obj):
            fields.append("mode")  # switching the mode is forcing/releasing by another route
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        editable = (
            self.has_add_permission(request)
            if obj is None
            else self.has_change_permission(request, obj)
        )
        if editable:
            return fieldsets
        return [fs for fs in fieldsets if "change_reason" not in fs[1]["fields"]]

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        summary = change_summary(form)
        if not add and not summary:
            return super().construct_change_message(request, form, formsets, add)
        return audit_text(summary, form.cleaned_data.get("change_reason", ""), add)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Saving only bumps the version: the circuit's state in the backend is untouched.
        reason = form.cleaned_data.get("change_reason", "")
        with BreakerPolicy.audit(actor=request.user, reason=reason, source=RevisionSource.ADMIN):
            super().save_model(request, obj, form, change)  # a revision when anything changed
        summary = change_summary(form)
        if change and not summary:
            return
        events.record_action(
            obj.name,
            EventKind.POLICY_CHANGED,
            actor=request.user,
            reason=audit_text(summary, form.cleaned_data.get("change_reason", ""), not change),
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        name = obj.name
        super().delete_model(request, obj)  # the model's delete(): cache invalidation included
        events.record_action(
            name, EventKind.POLICY_CHANGED, actor=request.user, reason=str(_("Policy deleted."))
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and obj.pk is not None:
            context.update(self._live_context(request, obj))
            context.update(preview_context(request, obj, context.get("adminform")))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _live_context(self, request: HttpRequest, obj: BreakerPolicy) -> dict[str, Any]:
        # The stored row, not ``obj``: after an invalid POST ``obj`` holds the rejected values.
        row = BreakerPolicy.objects.filter(pk=obj.pk).values(*POLICY_COLUMNS).first()
        states, warning = fetch([row] if row else [])
        live = states.get(obj.name) or Live(UNKNOWN, None)
        opts = self.model._meta
        mode = row["mode"] if row else obj.mode
        controls = [
            (
                control,
                reverse(
                    f"admin:{self.url_name(control.slug)}",
                    args=[quote(obj.pk)],
                    current_app=self.admin_site.name,
                ),
            )
            for control in self.allowed_controls(request, obj)
            if _applies(control.slug, mode)
        ]
        events_url = None
        if request.user.has_perm(f"{opts.app_label}.view_circuitevent"):
            changelist = reverse(
                f"admin:{opts.app_label}_circuitevent_changelist", current_app=self.admin_site.name
            )
            events_url = f"{changelist}?{urlencode({'circuit': obj.name})}"
        return {
            "live": live,
            "live_badge": badge(live),
            "panels_in_content": compat.PANELS_IN_CONTENT,
            "live_warning": warning,
            "live_facts": _facts(live, row or {}, self.get_empty_value_display()),
            "controls": controls,
            "reason_form": ReasonForm(auto_id="id_control_%s"),
            "timeline": timeline.render(obj.name),
            "timeline_legend": [(state, LABELS[state]) for state in timeline.LEGEND],
            "recent_events": CircuitEvent.objects.filter(circuit=obj.name).select_related("actor")[
                :RECENT_EVENTS
            ],
            "events_url": events_url,
            "empty_value": self.get_empty_value_display(),
            "resilience_enabled": conf.ENABLED,
            **self.revisions_context(request, obj),
            **self.outcomes_context(request, obj.pk, obj.name, row or {}),
        }


def _facts(live: Live, row: dict[str, Any], empty: str) -> list[tuple[Any, str]]:
    """The live panel's label/value pairs; ``empty`` (the admin's empty value) where there is
    nothing to show."""
    facts = [
        (_("consecutive failures"), consecutive(live, row.get("failure_threshold")) or empty),
        (_("failure rate (window)"), failure_rate(live) or empty),
        (_("in flight / cap"), in_flight(live, row.get("max_concurrent_calls"), empty) or empty),
        (_("next trial"), next_trial(live) or empty),
    ]
    opened_at = live.get("opened_at")
    if opened_at:
        opened = datetime.fromtimestamp(opened_at, tz=UTC)
        facts.append(
            (
                _("opened"),
                f"{ago(opened)} ({opened.isoformat(timespec='seconds')})",
            )
        )
    if live.get("trips"):
        facts.append((_("re-trips without recovery"), str(live.get("trips"))))
    if live.get("half_open_permits"):
        facts.append((_("trial calls running"), str(live.get("half_open_permits"))))
    facts.append((_("policy version"), str(row.get("version", empty))))
    return facts


def _applies(slug: str, mode: str) -> bool:
    """Release undoes a mode other than enforced; forcing an already forced circuit is moot."""
    if slug == "release":
        return mode != ENFORCED
    if slug == "force-open":
        return mode != FORCED_OPEN
    return True
