"""A server-rendered SVG picture of one circuit's state changes over the last 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from resilience.admin.live import LABELS, UNKNOWN, duration
from resilience.engine_types import CLOSED, FORCED_OPEN, HALF_OPEN, OPEN
from resilience.models import CircuitEvent, EventKind

WINDOW = timedelta(hours=24)
# Above this many changes in the window only the latest are drawn; the rest reads "unknown".
MAX_EVENTS = 500
STATE_KINDS = [kind for kind in EventKind.values if kind != EventKind.POLICY_CHANGED]
LEGEND = (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, UNKNOWN)
WIDTH, BAR_Y, BAR_H, HEIGHT = 960, 6, 26, 52


@dataclass(frozen=True)
class Segment:
    state: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Change:
    at: datetime
    kind: str
    to_state: str


def changes(circuit: str, now: datetime, window: timedelta = WINDOW) -> tuple[str, list[Change]]:
    """The state at the start of the window (``window`` up to ``now``) and the changes inside
    it, oldest first (2 queries)."""
    start = now - window
    events = CircuitEvent.objects.filter(circuit=circuit, kind__in=STATE_KINDS).order_by(
        "-created_at", "-id"
    )
    recent = [
        Change(row["created_at"], row["kind"], row["to_state"])
        for row in events.filter(created_at__gte=start, created_at__lte=now).values(
            "created_at", "kind", "to_state"
        )[:MAX_EVENTS]
    ]
    recent.reverse()
    if len(recent) == MAX_EVENTS:
        return UNKNOWN, recent
    before = events.filter(created_at__lt=start).values_list("to_state", flat=True).first()
    # A circuit starts closed: without any earlier change, it was closed.
    return (before or CLOSED), recent


def segments(initial: str, found: list[Change], start: datetime, end: datetime) -> list[Segment]:
    """Consecutive ``Segment``s covering ``start``..``end``; equal neighbours are merged."""
    result: list[Segment] = []
    state, since = _known(initial), start
    for change in found:
        new_state = _known(change.to_state)
        if new_state != state:
            if change.at > since:
                result.append(Segment(state, since, change.at))
            state, since = new_state, change.at
    if end > since:
        result.append(Segment(state, since, end))
    return result


def _known(state: str) -> str:
    return state if state in LABELS else UNKNOWN


def _x(at: datetime, start: datetime) -> float:
    return round((at - start) / WINDOW * WIDTH, 2)


def _clock(at: datetime) -> str:
    return date_format(timezone.localtime(at), "H:i")


def render(circuit: str, now: datetime | None = None) -> SafeString:
    """The SVG markup (every text escaped), with a ``<title>`` tooltip on segments and marks."""
    now = now or timezone.now()
    start = now - WINDOW
    initial, found = changes(circuit, now)
    bars = format_html_join(
        "",
        '<rect class="rs-seg rs-{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        (
            (
                seg.state,
                _x(seg.start, start),
                BAR_Y,
                max(0.5, _x(seg.end, start) - _x(seg.start, start)),
                BAR_H,
                _("%(state)s from %(start)s to %(end)s (%(length)s)")
                % {
                    "state": LABELS[seg.state],
                    "start": _clock(seg.start),
                    "end": _clock(seg.end),
                    "length": duration((seg.end - seg.start).total_seconds()),
                },
            )
            for seg in segments(initial, found, start, now)
        ),
    )
    marks = format_html_join(
        "",
        '<line class="rs-mark" x1="{0}" x2="{0}" y1="{1}" y2="{2}"><title>{3}</title></line>',
        (
            (
                _x(change.at, start),
                BAR_Y - 3,
                BAR_Y + BAR_H + 3,
                f"{_clock(change.at)} {EventKind(change.kind).label} → "
                f"{LABELS.get(change.to_state, change.to_state)}",
            )
            for change in found
        ),
    )
    ticks = format_html_join(
        "",
        '<text class="rs-tick" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (
                _x(at, start),
                HEIGHT - 4,
                "start" if hour == 0 else "end" if hour == 24 else "middle",
                _("now") if hour == 24 else _clock(at),
            )
            for hour in range(0, 25, 3)
            for at in [start + timedelta(hours=hour)]
        ),
    )
    summary = _("%(circuit)s: %(count)d state changes in the last 24 hours") % {
        "circuit": circuit,
        "count": len(found),
    }
    return format_html(
        '<svg class="rs-timeline" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'xmlns="http://www.w3.org/2000/svg">'
        "<title>{}</title>{}{}{}</svg>",
        WIDTH,
        HEIGHT,
        summary,
        summary,
        bars,
        marks,
        ticks,
    )
