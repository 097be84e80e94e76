"""Live state in words for the admin's cells and panels: badges, durations, counts."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from resilience.admin.live.state import LABELS, UNKNOWN, Live
from resilience.engine_types import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, MONITOR, OPEN


def badge(live: Live) -> str:
    """A coloured state badge; monitor mode also says what enforcing would do."""
    title = live.label
    text = live.label
    if live.state == MONITOR and live.engine_state and live.engine_state != CLOSED:
        text = f"{live.label} · {LABELS.get(live.engine_state, live.engine_state)}"
        title = _("Monitor only: enforcing would be %(state)s") % {"state": live.engine_state}
    return format_html('<span class="rs-badge rs-{}" title="{}">{}</span>', live.state, title, text)


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 5 s"``, ``"2 h 3 min"``: enough precision to act on (no-break spaces
    between a number and its unit, so a narrow cell never leaves a lone "s" on a line)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return _("%(s)d\u00a0s") % {"s": seconds}
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return _("%(m)d\u00a0min %(s)d\u00a0s") % {"m": minutes, "s": seconds}
    hours, minutes = divmod(minutes, 60)
    return _("%(h)d\u00a0h %(m)d\u00a0min") % {"h": hours, "m": minutes}


def ago(at: datetime) -> str:
    """``"45 s ago"``, ``"12 min 5 s ago"``, then Django's ``"3 hours, 2 minutes ago"``."""
    seconds = (timezone.now() - at).total_seconds()
    since = duration(seconds) if seconds < 3600 else timesince(at)
    return str(_("%(time)s ago") % {"time": since})


def next_trial(live: Live) -> str:
    """When the next trial call may go through, in words; empty when there is none to wait for
    (the admin shows its empty value there)."""
    if live.state == FORCED_OPEN:
        return str(_("after release"))
    state = live.engine_state
    if live.state in (DISABLED, UNKNOWN) or state == CLOSED:
        return ""
    retry_after = float(live.get("retry_after") or 0)
    if state == OPEN:
        return str(_("in %(t)s") % {"t": duration(retry_after)}) if retry_after else str(_("now"))
    if state == HALF_OPEN:
        return str(_("trial running")) if live.get("half_open_permits") else str(_("now"))
    return ""


def state_cell(live: Live) -> str:
    """The changelist's state: the badge and, under it, when the next trial may go through."""
    note = _trial_note(live)
    if not note:
        return badge(live)
    return format_html('{}<span class="rs-trial">{}</span>', badge(live), note)


def _trial_note(live: Live) -> str:
    when = next_trial(live)
    if live.state == FORCED_OPEN:
        return str(_("until released"))
    if not when or (live.engine_state == HALF_OPEN and live.get("half_open_permits")):
        return when  # "trial running"
    return str(_("next trial %(when)s") % {"when": when})


def critical_marker(critical: bool) -> str:
    """A worded marker for a critical circuit (not the admin's green tick: critical is a warning,
    not an achievement); empty for the others."""
    if not critical:
        return ""
    return format_html(
        '<span class="rs-critical" title="{}">{}</span>',
        _("Critical: while open, the health endpoint reports the site as degraded"),
        _("critical"),
    )


def consecutive(live: Live, threshold: int | None) -> str:
    """``"3 / 5"``: consecutive failures against the threshold (just the count when it is off);
    empty when the state is unknown."""
    count = live.get("consecutive_failures")
    if count is None:
        return ""
    return f"{count} / {threshold}" if threshold else str(count)


def in_flight(live: Live, cap: int | None, empty: str) -> str:
    """``"1 / 2"``: calls running now against the bulkhead cap (``"1"`` without a cap, when a
    call deadline has the calls counted); ``empty`` (the admin's empty value) when nothing is
    counted, with a tooltip saying so, or when the state is unknown. Marked ``rs-full`` at or
    over the cap (over it: monitor mode lets calls through)."""
    count = live.get("in_flight")
    if count is None:
        if live.snapshot is None:
            return empty  # the state is unknown (Django 4.2 shows "" as it is, 5.x as empty)
        return format_html(
            '<span title="{}">{}</span>', _("not counted: no cap, no deadline"), empty
        )
    if not cap:
        return format_html('<span class="rs-in-flight">{}</span>', count)
    return format_html(
        '<span class="rs-in-flight{}" title="{}">{} / {}</span>',
        " rs-full" if count >= cap else "",
        _("calls in flight / max concurrent calls"),
        count,
        cap,
    )


def failure_rate(live: Live) -> str:
    """``"40 % of 10"`` calls in the current window; empty without calls."""
    rate, calls = live.get("failure_rate"), live.get("calls_in_window") or 0
    if rate is None or not calls:
        return ""
    return _("%(rate).0f %% of %(calls)d") % {"rate": rate, "calls": calls}
