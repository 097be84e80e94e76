"""Live circuit state for the admin: one backend round trip per request, badges and wording."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from resilience.backends import get_backend
from resilience.engine import Policy
from resilience.engine_types import (
    CLOSED,
    DISABLED,
    ENFORCED,
    FORCED_OPEN,
    HALF_OPEN,
    MONITOR,
    OPEN,
)
from resilience.exceptions import BackendError
from resilience.models import BreakerPolicy
from resilience.policies import ENGINE_FIELDS
from resilience.sanitize import describe_error, one_line

logger = logging.getLogger("resilience")

UNKNOWN = "unknown"
# Display states, in the order the overview lists them (most urgent first).
LABELS = {
    OPEN: _("open"),
    HALF_OPEN: _("half-open"),
    FORCED_OPEN: _("forced open"),
    MONITOR: _("monitor"),
    DISABLED: _("disabled"),
    CLOSED: _("closed"),
    UNKNOWN: _("unknown"),
}
BROKEN = (OPEN, HALF_OPEN, FORCED_OPEN)
# Columns a ``values()`` query needs to rebuild an engine ``Policy`` (``mode`` included).
POLICY_COLUMNS = ("id", "name", *ENGINE_FIELDS)


@dataclass(frozen=True)
class Live:
    """The live view of one circuit: its display state and the backend snapshot behind it."""

    state: str
    snapshot: dict[str, Any] | None

    @property
    def label(self) -> str:
        return str(LABELS[self.state])

    @property
    def engine_state(self) -> str | None:
        """closed/open/half_open as the backend sees it (monitor mode shows what would happen)."""
        return self.snapshot["state"] if self.snapshot else None

    @property
    def broken(self) -> bool:
        return self.state in BROKEN

    def get(self, key: str, default: Any = None) -> Any:
        return self.snapshot.get(key, default) if self.snapshot else default


def display_state(mode: str, snapshot: dict[str, Any] | None) -> str:
    """What the operator should see: a mode that overrides the state wins."""
    if mode in (DISABLED, FORCED_OPEN):
        return mode
    if snapshot is None:
        return UNKNOWN
    if mode == MONITOR:
        return MONITOR
    return snapshot.get("state", UNKNOWN) if snapshot.get("state") in LABELS else UNKNOWN


def policy_from_values(values: dict[str, Any]) -> Policy:
    """The engine ``Policy`` of a row (a dict of ``POLICY_COLUMNS`` or a model instance)."""
    if not isinstance(values, dict):
        values = {name: getattr(values, name) for name in ENGINE_FIELDS}
    return Policy.from_mapping(values)


def read_backend(
    read: Callable[[Any], Any], failed: Any = None, shared_only: bool = False
) -> tuple[Any, str | None]:
    """``read(backend)`` and a warning for the operator when what it read is not the shared
    truth. Never raises: a failing backend gives ``None`` and the warning ``failed`` (with
    ``%(error)s``; by default: the states show as unknown). ``shared_only``: a read that has
    no local fallback (the outcome history) is not tried during a known outage: the page must
    not wait for one more socket timeout (``health()`` costs no round trip)."""
    try:
        backend = get_backend()
        if shared_only and backend.health().get("degraded"):
            raise BackendError("the backend is in an outage")
        value = read(backend)
        health = backend.health()  # in-process bookkeeping, no round trip
    except Exception as exc:  # the admin is the incident console: it must render anyway
        logger.warning("resilience: the admin could not read the backend: %s", describe_error(exc))
        if failed is None:
            failed = _("could not read the states (%(error)s); they show as unknown")
        return None, failed % {"error": type(exc).__name__}
    if health.get("degraded"):
        return value, _(
            "the backend is degraded (%(reason)s): these are this process's local states, "
            "not the shared ones"
        ) % {"reason": one_line(str(health.get("reason") or "?"), 200)}
    return value, None


def fetch(rows: Iterable[Any]) -> tuple[dict[str, Live], str | None]:
    """``{name: Live}`` for ``rows`` (dicts or instances) with ONE ``snapshot_many`` call.

    Never raises: a failing backend makes every state ``unknown``. The second value is a
    warning for the operator when the states are not the shared truth (backend failed, or
    degraded and answering from this process's local fallback).
    """
    modes, policies = {}, {}
    for row in rows:
        name = row["name"] if isinstance(row, dict) else row.name
        modes[name] = row["mode"] if isinstance(row, dict) else row.mode
        policies[name] = policy_from_values(row)
    if not policies:
        return {}, None
    # A circuit past its open time is moved to half-open first: a quiet one never looks open.
    snapshots, warning = read_backend(lambda backend: backend.snapshot_current(policies))
    snapshots = snapshots or {}
    states = {
        name: Live(display_state(modes[name], snapshots.get(name)), snapshots.get(name))
        for name in policies
    }
    return states, warning


class Board:
    """The live state a changelist request shows, read once, at a cost that grows with what the
    page shows, not with the table (docs/admin.md, "Cost").

    The overview's counts and the live-state filter come from the backend's index of the
    circuits that are not closed (``Backend.not_closed``) and the policies' modes (SQL);
    snapshots are read only for the rows of the page and the broken circuits the overview
    lists. A backend without such an index is read in full instead (``snapshot_many``).
    """

    def __init__(self) -> None:
        self._index: dict[str, str] | None = None
        self._loaded = False
        self._states: dict[str, Live] = {}  # the snapshots read so far
        self._broken_rows: list[dict[str, Any]] | None = None
        self.warning: str | None = None

    @classmethod
    def for_request(cls, request: Any) -> Board:
        board = getattr(request, "_resilience_board", None)
        if board is None:
            board = request._resilience_board = cls()
        return board

    def index(self) -> dict[str, str] | None:
        """``{name: state}`` of the circuits not closed; None when the backend failed."""
        if not self._loaded:
            self._loaded = True
            self._index, self.warning = read_backend(lambda backend: backend.not_closed())
            if self._index is None and self.warning is None:  # the backend keeps no index
                rows = BreakerPolicy.objects.order_by().values(*POLICY_COLUMNS)
                self._states, self.warning = fetch(rows)
                if any(live.snapshot for live in self._states.values()) or not self._states:
                    self._index = {
                        name: live.engine_state
                        for name, live in self._states.items()
                        if live.engine_state not in (None, CLOSED)
                    }
        return self._index

    def state_of(self, name: str, mode: str) -> str:
        """The display state of a policy, from its mode and the index alone."""
        if mode in (DISABLED, FORCED_OPEN):
            return mode
        index = self.index()
        if index is None:
            return UNKNOWN
        return MONITOR if mode == MONITOR else index.get(name, CLOSED)

    def attach(self, rows: Iterable[Any]) -> None:
        """Read the snapshots of ``rows`` (a page) not read yet: one ``snapshot_many``."""
        missing = [row for row in rows if _name(row) not in self._states]
        if not missing:
            return
        if self.index() is None:  # failed already: not a second timeout
            self._states.update({_name(row): Live(UNKNOWN, None) for row in missing})
            return
        states, warning = fetch(missing)
        self._states.update(states)
        self.warning = self.warning or warning
        index = self._index
        for name, live in states.items():  # a circuit moved on reading (half-open) counts so
            found = live.engine_state
            if index is not None and found in (OPEN, HALF_OPEN) and name in index:
                index[name] = found

    def live(self, name: str) -> Live:
        return self._states.get(name) or Live(UNKNOWN, None)

    def filter(self, states: Iterable[str]) -> Q:
        """The policies in one of the display ``states``, as a query (modes and the index)."""
        index = self.index()
        query = Q(pk__in=[])
        for state in set(states):
            if state in (DISABLED, FORCED_OPEN):
                query |= Q(mode=state)
            elif index is None:
                if state == UNKNOWN:
                    query |= Q(mode__in=(ENFORCED, MONITOR))
            elif state == MONITOR:
                query |= Q(mode=MONITOR)
            elif state == CLOSED:
                query |= Q(mode=ENFORCED) & ~Q(name__in=list(index))
            elif state in (OPEN, HALF_OPEN):
                names = [name for name, found in index.items() if found == state]
                query |= Q(mode=ENFORCED, name__in=names)
        return query

    def _broken(self) -> list[dict[str, Any]]:
        """The rows of the broken policies: forced open, and enforced ones the index lists."""
        if self._broken_rows is None:
            query = self.filter(BROKEN)
            self._broken_rows = list(
                BreakerPolicy.objects.order_by().filter(query).values(*POLICY_COLUMNS)
            )
        return self._broken_rows

    def counts(self) -> list[tuple[str, str, int]]:
        """``(state, label, count)`` for every state present, most urgent first."""
        by_mode = dict(
            BreakerPolicy.objects.order_by().values_list("mode").annotate(count=Count("id"))
        )
        counter = Counter({DISABLED: by_mode.get(DISABLED, 0)})
        enforced = by_mode.get(ENFORCED, 0)
        if self.index() is None:
            counter[UNKNOWN] = enforced + by_mode.get(MONITOR, 0)
        else:
            counter[MONITOR] = by_mode.get(MONITOR, 0)
            counter.update(self.state_of(row["name"], row["mode"]) for row in self._broken())
            counter[CLOSED] = enforced - counter[OPEN] - counter[HALF_OPEN]
        counter[FORCED_OPEN] = by_mode.get(FORCED_OPEN, 0)
        return [(state, str(label), counter[state]) for state, label in LABELS.items()
                if counter[state] > 0]  # fmt: skip

    def broken(self, limit: int = 12) -> tuple[list[tuple[int, str, Live]], int]:
        """Up to ``limit`` ``(pk, name, live)`` of broken circuits (open first) and the total;
        the snapshots of those shown only are read."""
        order = {state: i for i, state in enumerate(LABELS)}
        rows = sorted(
            self._broken(), key=lambda row: (order[self.state_of(row["name"], row["mode"])],
                                             row["name"]),
        )  # fmt: skip
        shown = rows[:limit]
        self.attach(row for row in shown if row["mode"] != FORCED_OPEN)
        found = []
        for row in shown:
            live = self._states.get(row["name"]) or Live(FORCED_OPEN, None)
            found.append((row["id"], row["name"], live))
        return found, len(rows)


def _name(row: Any) -> str:
    return str(row["name"] if isinstance(row, dict) else row.name)


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
