"""The change page's outcome charts: the buckets of the last hour or day, as a table and as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import date_format
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from resilience import series
from resilience.admin import timeline
from resilience.admin.live import LABELS, read_backend
from resilience.models import EventKind

# The 10-second buckets cover the last 6 hours: an hour is 360 of them, a day 1,440 minutes.
RANGES = {"hour": (60, _("last hour")), "day": (24 * 60, _("last day"))}
DEFAULT_RANGE = "hour"
COUNTS = ("calls", "failures", "slow", "timeouts", "rejected_open", "rejected_bulkhead")
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
LIMITS = ("failure_rate_threshold", "slow_call_ms")  # 0 (off) is sent as null
# The words the script writes (readout, units, notes), translated here.
TEXT = {
    "call": _("call"),
    "calls": _("calls"),
    "failed": _("failed"),
    "slow": _("slow"),
    "timeouts": _("timed out"),
    "rejected_open": _("rejected (open)"),
    "rejected_bulkhead": _("rejected (bulkhead full)"),
    "no_calls": _("no calls"),
    "nothing": _("No calls and no rejections in this range."),
    "empty_calls": _("No calls in this range."),
    "empty_latency": _("No timed calls in this range."),
    "empty_rejected": _("No rejections in this range."),
    "per_10": _("per 10 s"),
    "per_60": _("per minute"),
    "trips_at": _("trips at %(value)s"),
    "slow_above": _("slow above %(value)s"),
    "off_scale": _("%(what)s (off the scale)"),
    "live": _("Live: refreshed every %(seconds)s s."),
    "paused": _("Paused while this tab is hidden."),
    "stale": _("Could not refresh (%(error)s); showing the last data."),
    "signed_out": _("signed out? Reload the page"),
    "hour": RANGES["hour"][1],
    "day": RANGES["day"][1],
}
# How often an open change page asks for fresh buckets (the JS stops while the tab is hidden).
POLL_SECONDS = 5


@dataclass(frozen=True)
class Outcomes:
    """One circuit's buckets over a range in columns (``start``: Unix ms), and its transitions."""

    payload: dict[str, Any]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The buckets with any outcome, newest first, for the table (empty ones left out)."""
        data = self.payload
        rows = []
        for i in reversed(range(len(data["start"]))):
            row = {field: data[field][i] for field in (*COUNTS, *PERCENTILES)}
            if not (row["calls"] or row["rejected_open"] or row["rejected_bulkhead"]):
                continue
            at = datetime.fromtimestamp(data["start"][i] / 1000, tz=UTC)
            row["start"] = date_format(timezone.localtime(at), "Y-m-d H:i:s")
            row["failure_rate"] = (
                round(100 * row["failures"] / row["calls"], 1) if row["calls"] else None
            )
            rows.append(row)
        return rows


def read(name: str, limits: Mapping[str, Any], range_key: str) -> Outcomes:
    """The outcomes of circuit ``name`` over ``range_key`` (one backend read, 2 SQL queries);
    ``limits``: the policy's ``LIMITS`` (a row's values), drawn as reference lines.

    Never raises on a backend failure: the buckets are then empty and ``warning`` says why.
    """
    minutes, _label = RANGES[range_key]
    got, warning = read_backend(
        lambda backend: _buckets(backend, name, minutes),
        _("could not read the outcome history (%(error)s)"),
        shared_only=True,
    )
    if got is None:
        until_ms = int(timezone.now().timestamp() * 1000)
        got = (until_ms - minutes * 60_000, until_ms, [])
    since_ms, until_ms, buckets = got
    if buckets:  # the x axis runs from the first bucket's start to the end of the current one
        since_ms = _start_ms(buckets[0])
        until_ms = _start_ms(buckets[-1]) + buckets[-1]["seconds"] * 1000
    now = datetime.fromtimestamp(until_ms / 1000, tz=UTC)
    initial, found = timeline.changes(name, now, timedelta(milliseconds=until_ms - since_ms))
    payload: dict[str, Any] = {
        "circuit": name,
        "range": range_key,
        "since": since_ms,
        "until": until_ms,
        "seconds": buckets[0]["seconds"] if buckets else None,
        "time_zone": timezone.get_current_timezone_name(),
        "warning": str(warning) if warning else None,
        **{field: limits.get(field) or None for field in LIMITS},
        "start": [_start_ms(bucket) for bucket in buckets],
        **{field: [int(bucket.get(field) or 0) for bucket in buckets] for field in COUNTS},
        **{field: [_ms(bucket.get(field)) for bucket in buckets] for field in PERCENTILES},
        "initial": initial,
        "transitions": [
            {
                "at": int(change.at.timestamp() * 1000),
                "kind": change.kind,
                "label": str(EventKind(change.kind).label),
                "to": change.to_state,
            }
            for change in found
        ],
        "states": {state: str(label) for state, label in LABELS.items()},
    }
    return Outcomes(payload)


def _buckets(backend: Any, name: str, minutes: int) -> tuple[int, int, list[dict[str, Any]]]:
    backend.flush()  # this process's own calls of the last seconds too (as Breaker.history)
    since_ms, until_ms = series.window(minutes, backend.clock.now_ms())
    return since_ms, until_ms, backend.history(name, since_ms, until_ms)


def _start_ms(bucket: dict[str, Any]) -> int:
    return int(bucket["start"].timestamp() * 1000)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def range_of(request: HttpRequest) -> str:
    """The range the request asks for (``?range=hour|day``); the default when it names none."""
    value = request.GET.get("range") or DEFAULT_RANGE
    return value if value in RANGES else DEFAULT_RANGE


class OutcomesMixin:
    """ModelAdmin mixin: ``<id>/outcomes/?range=hour|day``, the JSON the charts poll, and the
    change page's context for them."""

    def get_urls(self) -> list:
        opts = self.model._meta  # type: ignore[attr-defined]
        return [
            path(
                "<path:object_id>/outcomes/",
                self.admin_site.admin_view(self.outcomes_view),  # type: ignore[attr-defined]
                name=f"{opts.app_label}_{opts.model_name}_outcomes",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def outcomes_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET only; 403 without view permission, then 404; 400 for an unknown range."""
        if request.method not in ("GET", "HEAD"):
            return JsonResponse({"error": "GET only"}, status=405, headers={"Allow": "GET, HEAD"})
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        policy = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if policy is None:
            raise Http404(_("No such policy."))
        range_key = request.GET.get("range") or DEFAULT_RANGE
        if range_key not in RANGES:
            return JsonResponse({"error": f"range must be one of: {', '.join(RANGES)}"}, status=400)
        limits = {field: getattr(policy, field) for field in LIMITS}
        response = JsonResponse(read(policy.name, limits, range_key).payload)
        add_never_cache_headers(response)
        return response

    def outcomes_context(
        self, request: HttpRequest, pk: Any, name: str, limits: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What the change page's chart section needs (the table is rendered from it too)."""
        opts = self.model._meta  # type: ignore[attr-defined]
        range_key = range_of(request)
        outcomes = read(name, limits, range_key)
        return {
            "outcomes": outcomes.payload,
            "outcome_rows": outcomes.rows,
            "outcomes_url": reverse(
                f"admin:{opts.app_label}_{opts.model_name}_outcomes",
                args=[quote(pk)],
                current_app=self.admin_site.name,  # type: ignore[attr-defined]
            ),
            "outcomes_ranges": [
                (key, label, f"?{urlencode({'range': key})}#outcomes", key == range_key)
                for key, (_minutes, label) in RANGES.items()
            ],
            "outcomes_poll": POLL_SECONDS,
            "outcomes_text": {key: str(value) for key, value in TEXT.items()},
        }
