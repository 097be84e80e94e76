"""The live state a changelist request shows: the index of broken circuits, counts, filter."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q

from resilience.admin.live.state import (
    BROKEN,
    LABELS,
    POLICY_COLUMNS,
    UNKNOWN,
    Live,
    fetch,
    read_backend,
)
from resilience.engine_types import (
    CLOSED,
    DISABLED,
    ENFORCED,
    FORCED_OPEN,
    HALF_OPEN,
    MONITOR,
    OPEN,
)
from resilience.models import BreakerPolicy


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
