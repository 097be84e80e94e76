"""The watchdog: judges tracked calls while they run, and keeps their bulkhead slots leased."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resilience.backends.base import Backend
    from resilience.engine import Policy, Ticket

logger = logging.getLogger("resilience")

# The longest the thread sleeps without looking (a ManualClock does not wake it; tests call
# ``check()`` after advancing it).
MAX_SLEEP_SECONDS = 1.0


class Watch:
    """One call in flight of a tracked circuit (see ``Policy.tracked``).

    ``deadline`` (clock ms, 0 = none) is when the call counts as a failure if it is still
    running; ``renew_at`` (0 = no slot) when its bulkhead slot's lease is next extended.
    ``judged`` and ``ended`` change only under the watchdog's lock: whichever comes first,
    the deadline or the end of the call, decides how the call is counted, once.
    """

    __slots__ = (
        "backend",
        "deadline",
        "ended",
        "judged",
        "name",
        "on_overdue",
        "policy",
        "renew_at",
        "started",
        "ticket",
    )

    def __init__(
        self,
        backend: Backend,
        policy: Policy,
        ticket: Ticket,
        started: int,
        on_overdue: Callable[[Watch, int], None],
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.ticket = ticket
        self.name = ticket.circuit
        self.started = started
        self.deadline = started + policy.deadline_ms if policy.deadline_ms else 0
        self.renew_at = started + policy.slot_lease_ms // 2 if ticket.slot else 0
        self.on_overdue = on_overdue
        self.judged = False
        self.ended = False

    def wake(self) -> int:
        """When the watchdog next has something to do for this call (0: nothing)."""
        due = [t for t in (0 if self.judged else self.deadline, self.renew_at) if t]
        return min(due, default=0)


class Watchdog:
    """Every tracked call in flight in this process, ordered by when it needs looking at.

    One daemon thread (``resilience-watchdog``) sleeps until the earliest deadline or lease
    renewal, at most ``MAX_SLEEP_SECONDS``; it is started by the first watched call and ends
    when no call is watched. At a call's deadline it marks the call judged and reports it
    (``on_overdue``: counted as one failure in the shared state at that moment); the call's
    own outcome is then ignored. Calls still running at half their slot lease get the lease
    extended, so that only a killed process's slots ever lapse.
    """

    def __init__(self) -> None:
        self._order = itertools.count()
        self._clock: Any = None
        self._reset()

    def _reset(self) -> None:
        """Start empty, with a new lock: also in a forked child, which has none of its parent's
        calls, no watchdog thread, and perhaps a lock that a parent's thread held at the fork."""
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[tuple[int, int, Watch]] = []
        self._thread: threading.Thread | None = None
        # When the sleeping thread wakes up by itself (clock ms; 0: it is not asleep): a new
        # call is worth a notify() (a context switch) only when it is due earlier than that.
        self._sleeping_until = 0

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for _, _, watch in self._heap if not watch.ended)

    def watch(
        self,
        backend: Backend,
        policy: Policy,
        ticket: Ticket,
        started: int,
        on_overdue: Callable[[Watch, int], None],
    ) -> Watch:
        """Start watching an admitted call that began at ``started`` (backend clock ms)."""
        watch = Watch(backend, policy, ticket, started, on_overdue)
        wake = watch.wake()
        if not wake:
            return watch
        with self._lock:
            new_clock = self._clock is not backend.clock  # its sleep was measured on another
            self._clock = backend.clock
            heap = self._heap
            while heap and heap[0][2].ended:
                heapq.heappop(heap)  # so that the thread's next wake-up is a live call's
            heapq.heappush(heap, (wake, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="resilience-watchdog", daemon=True
                )
                self._thread.start()
            elif new_clock or wake < self._sleeping_until:
                self._wakeup.notify()
        return watch

    def end(self, watch: Watch) -> bool:
        """The call ended; True when it had been judged already (its outcome is not counted)."""
        with self._lock:
            watch.ended = True
            return watch.judged

    def check(self) -> int:
        """Judge and renew whatever is due now; returns the number of calls judged."""
        overdue: list[tuple[Watch, int]] = []
        renew: dict[tuple[int, str, Policy], list[Watch]] = {}
        with self._lock:
            clock = self._clock
            now = clock.now_ms() if clock is not None else 0
            while self._heap and self._heap[0][0] <= now:
                _, _, watch = heapq.heappop(self._heap)
                if watch.ended:
                    continue
                if watch.deadline and not watch.judged and watch.deadline <= now:
                    watch.judged = True
                    overdue.append((watch, now - watch.started))
                if watch.renew_at and watch.renew_at <= now:
                    key = (id(watch.backend), watch.name, watch.policy)
                    renew.setdefault(key, []).append(watch)
                    watch.renew_at = now + watch.policy.slot_lease_ms // 2
                wake = watch.wake()
                if wake:
                    heapq.heappush(self._heap, (wake, next(self._order), watch))
        # Outside the lock: these reach the backend (a round trip) and the events layer. One
        # failing report must not cost the others, nor the lease renewals due in this round.
        for watch, elapsed in overdue:
            _guarded(watch.on_overdue, watch, elapsed)
        for (_, name, policy), watches in renew.items():
            _guarded(watches[0].backend.renew_slots, name, policy, [w.ticket for w in watches])
        return len(overdue)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._heap and self._heap[0][2].ended:
                    heapq.heappop(self._heap)  # ended calls: nothing left to do for them
                if not self._heap:
                    self._thread = None
                    return
                clock = self._clock
                now = clock.now_ms() if clock is not None else 0
                wait_ms = min(self._heap[0][0] - now, int(MAX_SLEEP_SECONDS * 1000))
                if wait_ms > 0:
                    self._sleeping_until = now + wait_ms
                    self._wakeup.wait(wait_ms / 1000)
                    self._sleeping_until = 0
            self.check()


def _guarded(report: Callable[..., Any], *args: Any) -> None:
    try:
        report(*args)
    except Exception:  # logged; the thread and the other reports go on
        logger.exception("resilience: the watchdog could not report a call")


watchdog = Watchdog()
os.register_at_fork(after_in_child=watchdog._reset)
