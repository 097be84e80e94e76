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
WIDTH, BAR_Y, BAR_H, HEIGHT = 960, 12, 26, 58
# A minute is 0.67 of 960 units: a stretch is drawn at least MIN_WIDTH wide, and one narrower
# than BLIP_WIDTH that is not closed also gets a marker above the bar (with its own tooltip).
MIN_WIDTH, BLIP_WIDTH, BLIP_H = 4.0, 8.0, 9
# Shorter stretches say their times to the second.
SECONDS_BELOW = timedelta(minutes=10)


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


def _clock(at: datetime, seconds: bool = False) -> str:
    return date_format(timezone.localtime(at), "H:i:s" if seconds else "H:i")


def _describe(seg: Segment) -> str:
    short = seg.end - seg.start < SECONDS_BELOW
    return _("%(state)s from %(start)s to %(end)s (%(length)s)") % {
        "state": LABELS[seg.state],
        "start": _clock(seg.start, short),
        "end": _clock(seg.end, short),
        "length": duration((seg.end - seg.start).total_seconds()),
    }


def _bars(found: list[Segment], start: datetime) -> SafeString:
    """One ``rect`` per stretch, at least ``MIN_WIDTH`` wide (centred where it happened); the
    narrow ones are drawn last so their neighbours cannot cover them, and those not closed get
    a marker above the bar."""
    placed = []
    for seg in found:
        x, end = _x(seg.start, start), _x(seg.end, start)
        width = end - x
        if width < MIN_WIDTH:
            x = min(max(0.0, (x + end - MIN_WIDTH) / 2), WIDTH - MIN_WIDTH)
        placed.append((width < BLIP_WIDTH, round(x, 2), round(max(width, MIN_WIDTH), 2), seg))
    placed.sort(key=lambda item: item[0])  # stable: the wide ones first, in time order
    bars = format_html_join(
        "",
        '<rect class="rs-seg rs-{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        ((seg.state, x, BAR_Y, width, BAR_H, _describe(seg)) for _n, x, width, seg in placed),
    )
    blips = format_html_join(
        "",
        '<polygon class="rs-blip rs-{}" points="{},{} {},{} {},{}"><title>{}</title></polygon>',
        (
            (seg.state, *_triangle(x + width / 2), _describe(seg))
            for narrow, x, width, seg in placed
            if narrow and seg.state != CLOSED
        ),
    )
    return format_html("{}{}", bars, blips)


def _triangle(centre: float) -> tuple[float, ...]:
    """A downward marker above the bar, pointing at ``centre``."""
    half = BLIP_H * 0.6
    return (
        round(centre - half, 2), 1, round(centre + half, 2), 1, round(centre, 2), BAR_Y - 1,
    )  # fmt: skip


def render(circuit: str, now: datetime | None = None) -> SafeString:
    """The SVG markup (every text escaped), with a ``<title>`` tooltip on segments and marks."""
    now = now or timezone.now()
    start = now - WINDOW
    initial, found = changes(circuit, now)
    bars = _bars(segments(initial, found, start, now), start)
    marks = format_html_join(
        "",
        '<line class="rs-mark" x1="{0}" x2="{0}" y1="{1}" y2="{2}"><title>{3}</title></line>',
        (
            (
                _x(change.at, start),
                BAR_Y - 3,
                BAR_Y + BAR_H + 3,
                f"{_clock(change.at, seconds=True)} {EventKind(change.kind).label} → "
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
        marks,  # under the bars: they show above and below it, and never hide a short stretch
        bars,
        ticks,
    )
