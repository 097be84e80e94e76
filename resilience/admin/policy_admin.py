"""The ``BreakerPolicy`` admin: live changelist, overview, audited edits and the change page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from resilience import compat, events, whatif
from resilience.admin import timeline, trends
from resilience.admin.control import CircuitControlMixin, ReasonForm
from resilience.admin.forms import (
    FIELDSETS,
    BreakerPolicyForm,
    audit_text,
    change_summary,
    preview_form,
)
from resilience.admin.live import (
    BROKEN,
    LABELS,
    POLICY_COLUMNS,
    UNKNOWN,
    Board,
    Live,
    badge,
    consecutive,
    critical_marker,
    duration,
    failure_rate,
    fetch,
    in_flight,
    next_trial,
    state_cell,
)
from resilience.admin.maintenance import MaintenanceWindowInline
from resilience.admin.outcomes import OutcomesMixin
from resilience.admin.revisions import RevisionMixin
from resilience.conf import settings as conf
from resilience.engine_types import DISABLED, ENFORCED, FORCED_OPEN, MONITOR
from resilience.exceptions import BackendError
from resilience.models import BreakerPolicy, CircuitEvent, EventKind, RevisionSource
from resilience.replay import ReplayTooLarge

if TYPE_CHECKING:
    from typing import TypedDict

    from django_stubs_ext import WithAnnotations

    class _LastEvent(TypedDict):  # what get_queryset() annotates
        last_event_kind: str
        last_event_at: datetime | None


RECENT_EVENTS = 20
# The change form's Preview button (a submit button of the form itself) and its period.
PREVIEW, PREVIEW_HOURS = "_preview", "_preview_hours"
# A replay runs a busy circuit's failures one by one through the engine (docs/replay.md,
# "Cost"): the Preview stops after this many engine steps per policy (about 2 s each on one
# core) rather than hold a worker for minutes; the command has no limit.
PREVIEW_MAX_STEPS = 500_000
PREVIEW_CHOICES = ((1, _("1 hour")), (6, _("6 hours")), (24, _("24 hours")), (168, _("7 days")))
PREVIEW_ROWS = (
    (_("openings"), "opened"),
    (_("time open (s)"), "open_seconds"),
    (_("calls refused"), "rejected"),
    (_("calls run"), "calls"),
    (_("failures among them"), "failures"),
)
# Short enough for a column; the form keeps the explanatory choice labels.
MODE_NAMES = {
    ENFORCED: _("enforced"),
    MONITOR: _("monitor only"),
    FORCED_OPEN: _("forced open"),
    DISABLED: _("disabled"),
}


class LiveStateFilter(admin.SimpleListFilter):
    """Filter on the state in the backend: answers "what is broken right now?"."""

    title = _("live state")
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("broken", _("broken now")), *LABELS.items()]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        if not value:
            return queryset
        states = BROKEN if value == "broken" else (value,)
        return queryset.filter(Board.for_request(request).filter(states))


class LiveChangeList(ChangeList):
    """Attaches each listed policy's live state and last hour (one backend call each)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        board = Board.for_request(request)
        board.attach(self.result_list)  # the page's rows only
        found = trends.read(policy.name for policy in self.result_list)
        for policy in self.result_list:
            policy.live = board.live(policy.name)
            policy.trend = None if found is None else found.get(policy.name)


class Overview:
    """Template-facing summary of every circuit, evaluated only when the page renders."""

    def __init__(self, request: HttpRequest, empty: str) -> None:
        self.board = Board.for_request(request)
        self.empty = empty  # the admin's empty value

    def __call__(self) -> dict[str, Any]:
        counts = self.board.counts()
        broken, total = self.board.broken()
        return {
            "counts": counts,
            "broken": [
                {
                    "pk": pk,
                    "name": name,
                    "badge": badge(live),
                    "trial": next_trial(live) or self.empty,
                }
                for pk, name, live in broken
            ],
            "broken_total": total,
            "more": total - len(broken),
            "warning": self.board.warning,
        }


def _latest_transition() -> Any:
    return CircuitEvent.objects.filter(
        circuit=OuterRef("name"), kind__in=timeline.STATE_KINDS
    ).order_by("-created_at", "-id")


@admin.register(BreakerPolicy)
class BreakerPolicyAdmin(RevisionMixin, OutcomesMixin, CircuitControlMixin, admin.ModelAdmin):
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

    # --- changelist ---------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> Any:
        latest = _latest_transition()
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_event_kind=Subquery(latest.values("kind")[:1]),
                last_event_at=Subquery(latest.values("created_at")[:1]),
            )
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LiveChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        context = {
            "overview": Overview(request, self.get_empty_value_display()),
            "resilience_enabled": conf.ENABLED,
            "panels_in_content": compat.PANELS_IN_CONTENT,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    # Empty cells ("") show the admin's empty value (``empty_value_display``, Django's "-").
    # Short headers that may wrap: every column fits at 1366 px with both sidebars open.

    @admin.display(description=_("name"), ordering="name")
    def circuit_name(self, obj: BreakerPolicy) -> str:
        # Per-host names ("http:api.payments.example.com") may break after "." and ":" too.
        parts = ((part,) for part in _name_parts(obj.name))
        return format_html_join(mark_safe("<wbr>"), "{}", parts)

    @admin.display(description=_("state"))
    def state_badge(self, obj: BreakerPolicy) -> str:
        return state_cell(_live(obj))

    @admin.display(description=_("failures in a row"))
    def consecutive_failures(self, obj: BreakerPolicy) -> str:
        return consecutive(_live(obj), obj.failure_threshold)

    @admin.display(description=_("failure rate"))
    def failure_rate(self, obj: BreakerPolicy) -> str:
        return failure_rate(_live(obj))

    @admin.display(description=_("last hour"))
    def last_hour(self, obj: BreakerPolicy) -> str:
        return trends.render(getattr(obj, "trend", None), self.get_empty_value_display())

    @admin.display(description=_("in flight / cap"))
    def calls_in_flight(self, obj: BreakerPolicy) -> str:
        return in_flight(_live(obj), obj.max_concurrent_calls, self.get_empty_value_display())

    @admin.display(description=_("critical"), ordering="critical")
    def critical_flag(self, obj: BreakerPolicy) -> str:
        return critical_marker(obj.critical)

    @admin.display(description=_("last transition"), ordering="last_event_at")
    def last_transition(self, obj: WithAnnotations[BreakerPolicy, _LastEvent]) -> str:
        at = getattr(obj, "last_event_at", None)
        if at is None:
            return ""
        kind = EventKind(obj.last_event_kind).label if obj.last_event_kind in EventKind else ""
        return format_html(
            '<span title="{}">{}, {}</span>',
            at.isoformat(timespec="seconds"),
            kind,
            _ago(at),
        )

    @admin.display(description=_("mode"), ordering="mode")
    def mode_name(self, obj: BreakerPolicy) -> str:
        return str(MODE_NAMES.get(obj.mode, obj.mode))

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

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if request.method == "POST" and PREVIEW in request.POST:
            # Django saves only a valid form: a preview form never is (see PreviewForm).
            return preview_form(form)
        return form

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
            context.update(_preview_context(request, obj, context.get("adminform")))
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


def _preview_context(request: HttpRequest, obj: BreakerPolicy, adminform: Any) -> dict[str, Any]:
    """The Preview button's period choices and, after a valid Preview POST, the replay of the
    stored policy next to the edited values (``obj``, the form's unsaved instance)."""
    try:
        hours = int(request.POST.get(PREVIEW_HOURS, ""))
    except ValueError:
        hours = int(whatif.DEFAULT_HOURS)
    if hours not in dict(PREVIEW_CHOICES):
        hours = int(whatif.DEFAULT_HOURS)
    context: dict[str, Any] = {"preview_choices": PREVIEW_CHOICES, "preview_hours": hours}
    stored = BreakerPolicy.objects.filter(pk=obj.pk).first()
    if not getattr(getattr(adminform, "form", None), "previewable", False) or stored is None:
        return context
    try:
        result = whatif.preview(stored, obj, hours, PREVIEW_MAX_STEPS)
    except BackendError as exc:
        context["preview_error"] = _("The history could not be read (%(error)s).") % {
            "error": type(exc).__name__
        }
        return context
    except ReplayTooLarge:
        context["preview_error"] = _(
            "Too many calls to replay within a page request over the last %(hours)s h: choose "
            "a shorter period, or run manage.py resilience replay %(name)s --hours %(hours)s."
        ) % {"hours": hours, "name": stored.name}
        return context
    report = result.report
    actual, proposed = report["actual"], report["proposed"]
    labels = {f.name: f.verbose_name for f in BreakerPolicy._meta.fields}
    context["preview"] = {
        "report": report,
        "start": result.start,
        "end": result.end,
        "bucket_seconds": result.bucket_seconds,
        "rows": [(label, actual[key], proposed[key]) for label, key in PREVIEW_ROWS],
        "changed": [(labels[name], value) for name, value in proposed["changed"].items()],
        "not_replayed": [labels[name] for name in proposed["not_replayed"]],
    }
    return context


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
                f"{_ago(opened)} ({opened.isoformat(timespec='seconds')})",
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


def _ago(at: datetime) -> str:
    """``"45 s ago"``, ``"12 min 5 s ago"``, then Django's ``"3 hours, 2 minutes ago"``."""
    seconds = (timezone.now() - at).total_seconds()
    since = duration(seconds) if seconds < 3600 else timesince(at)
    return str(_("%(time)s ago") % {"time": since})


def _name_parts(name: str) -> list[str]:
    """``name`` cut after every "." and ":" (the browser already breaks after "-")."""
    return re.findall(r"[^.:]*[.:]|[^.:]+$", name) or [name]


def _live(obj: BreakerPolicy) -> Live:
    return getattr(obj, "live", None) or Live(UNKNOWN, None)
