"""The ``BreakerPolicy`` changelist: live state columns, the live-state filter, the overview."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from resilience import compat
from resilience.admin import timeline, trends
from resilience.admin.live import (
    BROKEN,
    LABELS,
    UNKNOWN,
    Board,
    Live,
    ago,
    badge,
    consecutive,
    critical_marker,
    failure_rate,
    in_flight,
    next_trial,
    state_cell,
)
from resilience.conf import settings as conf
from resilience.engine_types import DISABLED, ENFORCED, FORCED_OPEN, MONITOR
from resilience.models import BreakerPolicy, CircuitEvent, EventKind

if TYPE_CHECKING:
    from typing import TypedDict

    from django_stubs_ext import WithAnnotations

    class _LastEvent(TypedDict):  # what get_queryset() annotates
        last_event_kind: str
        last_event_at: datetime | None


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


class ChangelistMixin:
    """ModelAdmin mixin for ``BreakerPolicy``: the changelist's live columns (``list_display``
    names them) and its overview."""

    def get_queryset(self, request: HttpRequest) -> Any:
        latest = _latest_transition()
        return (
            super()  # type: ignore[misc]
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
            "overview": Overview(request, self.get_empty_value_display()),  # type: ignore[attr-defined]
            "resilience_enabled": conf.ENABLED,
            "panels_in_content": compat.PANELS_IN_CONTENT,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)  # type: ignore[misc]

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
        empty = self.get_empty_value_display()  # type: ignore[attr-defined]
        return trends.render(getattr(obj, "trend", None), empty)

    @admin.display(description=_("in flight / cap"))
    def calls_in_flight(self, obj: BreakerPolicy) -> str:
        empty = self.get_empty_value_display()  # type: ignore[attr-defined]
        return in_flight(_live(obj), obj.max_concurrent_calls, empty)

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
            ago(at),
        )

    @admin.display(description=_("mode"), ordering="mode")
    def mode_name(self, obj: BreakerPolicy) -> str:
        return str(MODE_NAMES.get(obj.mode, obj.mode))


def _name_parts(name: str) -> list[str]:
    """``name`` cut after every "." and ":" (the browser already breaks after "-")."""
    return re.findall(r"[^.:]*[.:]|[^.:]+$", name) or [name]


def _live(obj: BreakerPolicy) -> Live:
    return getattr(obj, "live", None) or Live(UNKNOWN, None)
