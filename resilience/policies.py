"""In-process cache of ``BreakerPolicy`` rows: no SQL on the call path (first call included),
background reads and refresh."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import AppRegistryNotReady
from django.core.signals import setting_changed
from django.db import close_old_connections, connection
from django.db.models import Count, Max, Min, Sum

from resilience.conf import DEFAULTS, POLICY_REFRESH_MAX_SECONDS
from resilience.conf import settings as conf
from resilience.resolved import ENGINE_FIELDS, ResolvedPolicy
from resilience.rules import is_number

__all__ = [
    "ENGINE_FIELDS",
    "FIRST_LOAD_WAIT_SECONDS",
    "PolicyRegistry",
    "ResolvedPolicy",
    "refresh_seconds",
    "registry",
]

logger = logging.getLogger("resilience")
# The longest a circuit's first call in this process waits for the background thread to read
# its row (then it runs under the defaults until the row is read). No wait inside an event
# loop, without the background thread (tests), or while a read is already stuck.
FIRST_LOAD_WAIT_SECONDS = 0.05


def refresh_seconds() -> float:
    """``POLICY_REFRESH_SECONDS``, or its default when it is not a number in (0, 3600]
    (``manage.py check`` reports that as resilience.E014): the refresh thread keeps running
    whatever the setting (an infinite wait made ``Event.wait`` raise and killed it)."""
    value = conf.POLICY_REFRESH_SECONDS
    if is_number(value) and 0 < value <= POLICY_REFRESH_MAX_SECONDS:
        return float(value)
    return float(DEFAULTS["POLICY_REFRESH_SECONDS"])


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class PolicyRegistry:
    """Maps circuit names to ``ResolvedPolicy``; one dict lookup on the call path, never SQL.

    A circuit's first use in this process (a miss) runs under its defaults (``POLICIES[name]``
    or ``DEFAULT_POLICY``) and asks the background thread to read its row; the call waits for
    that read at most ``FIRST_LOAD_WAIT_SECONDS`` (not at all inside an event loop, or while a
    read is stuck on a hung database), and the row applies from the call after the read (the
    ``epoch`` is bumped: breakers re-route). The background thread also compares a cheap stamp
    of the table every ``POLICY_REFRESH_SECONDS`` and reloads on change, which is how an admin
    edit in one process reaches every other process; it creates the rows of circuits first used
    in this process, in its own connection and transaction. A row saved or deleted in this
    process applies here at once (``put``), without a query.

    The rows are those of ``model`` (``BreakerPolicy``), which ``resilience.models`` binds when
    it is loaded: the models sit above this module and import it, never the other way round.
    """

    def __init__(self) -> None:
        self._fresh: dict[str, ResolvedPolicy] = {}
        self._known: dict[str, ResolvedPolicy] = {}
        self._missing: set[str] = set()
        self._to_load: set[str] = set()  # names whose row the background thread reads next
        self._loaded = threading.Event()  # set when the read of the current _to_load is over
        self._busy_since: float | None = None  # monotonic start of the thread's current round
        self._stamp: tuple | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.background = True  # the test suite turns this off and calls refresh() itself
        # Bumped whenever an entry may have changed; breakers cache their entry per epoch.
        # next() on a count is atomic: an increment from two threads is never lost.
        self._epochs = itertools.count(1)
        self.epoch = 0
        self._versions: dict[str, int] = {}
        self._model: Any = None
        # What "now" is for schedules (kill switches, maintenance windows): None is the wall
        # clock; tests hand in a resilience.clock.ManualClock.
        self.clock: Any = None

    @property
    def model(self) -> Any:
        """The ``BreakerPolicy`` model, bound by ``resilience.models`` when it is loaded."""
        model = self._model
        if model is None:
            raise AppRegistryNotReady("resilience: the policy model is not loaded yet")
        return model

    def bind(self, model: Any) -> None:
        """Cache the rows of ``model``: ``resilience.models`` binds ``BreakerPolicy``."""
        self._model = model

    def now(self) -> datetime:
        """The current time for schedules (``clock``, else the wall clock), aware, UTC."""
        clock = self.clock
        if clock is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)

    def _defaults(self, name: str) -> ResolvedPolicy:
        return ResolvedPolicy.from_row(self.model.from_settings(name))

    # --- call path ----------------------------------------------------------------------------

    def get(self, name: str) -> ResolvedPolicy:
        resolved = self._fresh.get(name)
        if resolved is None:
            resolved = self._miss(name)
        return resolved

    def _miss(self, name: str) -> ResolvedPolicy:
        """First use here: the defaults (or last known values) at once, the row read in the
        background; waits for that read at most ``FIRST_LOAD_WAIT_SECONDS``."""
        interim = self._known.get(name) or self._defaults(name)
        with self._lock:
            self._to_load.add(name)
            loaded = self._loaded
        self._wake.set()
        self._ensure_thread()
        if self._may_wait():
            loaded.wait(FIRST_LOAD_WAIT_SECONDS)
        with self._lock:  # the background thread may have stored the row meanwhile
            resolved = self._fresh.setdefault(name, interim)
            self._known.setdefault(name, resolved)
        return resolved

    def _may_wait(self) -> bool:
        thread = self._thread
        if not self.background or thread is None or not thread.is_alive() or _in_event_loop():
            return False
        since = self._busy_since  # a round stuck for longer (a hung database) will not help
        return since is None or time.monotonic() - since < FIRST_LOAD_WAIT_SECONDS

    def put(self, name: str, row: Any) -> None:
        """This process saved ``row`` (None: deleted it): in force here at once, no query."""
        resolved = ResolvedPolicy.from_row(row) if row is not None else self._defaults(name)
        with self._lock:
            self._fresh[name] = self._known[name] = resolved
        self.epoch = next(self._epochs)

    # --- invalidation and refresh -------------------------------------------------------------

    def invalidate(self, name: str | None = None) -> None:
        """Have the background thread read ``name``'s row again (None: refresh now, which
        reads the rows whose version changed); the values in force stay until then, and no
        query runs here. Breakers re-route (the epoch changes)."""
        if name is not None:
            with self._lock:
                self._to_load.add(name)
        self.epoch = next(self._epochs)
        self._wake.set()

    def clear(self) -> None:
        """Forget everything (tests, settings changes)."""
        with self._lock:
            self._fresh.clear()
            self._known.clear()
            self._missing.clear()
            self._to_load.clear()
        self._stamp = None
        self._versions = {}
        self.epoch = next(self._epochs)

    def known_names(self) -> list[str]:
        return sorted(self._known)

    def refresh(self) -> bool:
        """Read the rows asked for (first uses, invalidations), create the rows of circuits
        first used here, apply what is due (time-boxed kill switches, maintenance windows:
        ``_stamp_now``), then reload the rows whose version changed.

        A cheap stamp (row count, highest id, sum of versions; versions only grow) says whether
        anything changed; then the (name, version) pairs say which rows did, and only those are
        read, so propagation stays fast with thousands of policies. Versions, not timestamps:
        clocks of the saving hosts and commit order cannot hide an edit. Returns True when
        something changed. Runs in the background thread, and in tests.
        """
        model = self.model
        loaded = self._load_requested()
        self._create_missing()
        stamp = self._stamp_now()
        if stamp == self._stamp:
            return loaded
        versions = dict(model.objects.values_list("name", "version"))
        changed = [
            name for name, version in versions.items() if self._versions.get(name) != version
        ]
        rows = {}
        for start in range(0, len(changed), 500):
            chunk = model.objects.filter(name__in=changed[start : start + 500])
            rows.update({row.name: ResolvedPolicy.from_row(row) for row in chunk})
        for name in list(self._known):
            if name not in versions:  # deleted, or never created: back to the defaults
                rows[name] = self._defaults(name)
        with self._lock:
            self._known.update(rows)
            self._fresh.update(rows)
        self._versions = versions
        self._stamp = stamp
        self.epoch = next(self._epochs)
        return True

    def _stamp_now(self) -> tuple:
        """The table's stamp; the same query finds the earliest time-boxed kill switch and the
        next maintenance-window change, and what is due is applied here (``run_schedule``; its
        UPDATEs bump versions: the stamp is read again). Every process does this, even for
        circuits it never calls."""
        model = self.model
        found = model.objects.aggregate(
            Count("id"), Max("id"), Sum("version"), Min("forced_until"), Min("window_next_at")
        )
        due = [found.pop("forced_until__min"), found.pop("window_next_at__min")]
        now = self.now()
        if any(at is not None and at <= now for at in due) and model.run_schedule(now):
            found = model.objects.aggregate(Count("id"), Max("id"), Sum("version"))
        return tuple(found.values())

    def _load_requested(self) -> bool:
        """Read the rows of the names asked for since the last read; True if there were any.
        Names without a row run on their defaults, and their rows are created next."""
        model = self.model
        with self._lock:
            names, self._to_load = self._to_load, set()
            done, self._loaded = self._loaded, threading.Event()
        try:
            if not names:
                return False
            wanted = sorted(names)
            rows = {}
            for start in range(0, len(wanted), 500):
                chunk = model.objects.filter(name__in=wanted[start : start + 500])
                rows.update({row.name: ResolvedPolicy.from_row(row) for row in chunk})
            for name in names.difference(rows):  # no row (never created, or deleted)
                rows[name] = self._defaults(name)
            with self._lock:
                self._known.update(rows)
                self._fresh.update(rows)
                self._missing.update(name for name, r in rows.items() if r.pk is None)
            self.epoch = next(self._epochs)
            return True
        except Exception:
            with self._lock:
                self._to_load.update(names)  # read on the next round
            raise
        finally:
            done.set()

    def _create_missing(self) -> None:
        """Create the rows of the names used without one, all in one ``bulk_create`` (a few
        queries whatever their number; a row another process created meanwhile is kept as it
        is). Each row has ``from_settings`` values, validated there; ``refresh`` reads them
        back next, as it reads any added row."""
        model = self.model
        with self._lock:
            names, self._missing = self._missing, set()
        if not conf.CREATE_MISSING_POLICIES or not names:
            return
        try:
            rows = [model.from_settings(name) for name in sorted(names)]
            model.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        except Exception:
            with self._lock:
                self._missing.update(names)
            raise

    def _ensure_thread(self) -> None:
        if self._thread is not None or not self.background:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="resilience-policies", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        failures = 0
        while True:
            self._wake.wait(timeout=max(0.05, refresh_seconds()) / 2)
            self._wake.clear()
            if not self.background:
                continue
            self._busy_since = time.monotonic()
            try:
                close_old_connections()
                self.refresh()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 600 == 0:
                    logger.warning(
                        "resilience: cannot refresh policies (%s); using the last known values",
                        type(exc).__name__,
                    )
            finally:
                self._busy_since = None
                connection.close()  # never hold a connection between refreshes


registry = PolicyRegistry()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "RESILIENCE":
        registry.clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="resilience.policies.clear")
