"""A bounded queue drained by one daemon thread per process; failed items retried by tenacity."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from tenacity import Retrying, retry_if_result, wait_exponential

from resilience.sanitize import describe_error

logger = logging.getLogger("resilience")

BATCH = 100
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
LOG_EVERY_SECONDS = 60.0
# Waits between retries of the failed items: 0.5 s, 1 s, 2 s, ... up to 30 s, for as long as
# they keep failing (no attempt limit: giving up would lose them), afresh once all succeeded.
RETRY_WAIT = wait_exponential(
    multiplier=RETRY_MIN_SECONDS, min=RETRY_MIN_SECONDS, max=RETRY_MAX_SECONDS
)

_instances: weakref.WeakSet[BackgroundQueue] = weakref.WeakSet()


class BackgroundQueue:
    """Hand items to ``handler`` on a daemon thread; ``put`` never blocks and never raises.

    ``handler(items)`` returns the items that failed (or raises: all of them failed). Failed
    items are retried by tenacity (``RETRY_WAIT``, never giving up) while new items keep being
    handled as they come, each on its first try at once; at most ``maxsize`` failed items are
    kept. With the database down, every batch fails and waits for its retry; with the database
    hung, the thread waits inside ``handler`` and new items pile up in the queue. Nothing is
    lost either way unless the queue fills up (``put`` then returns False and warns), the
    process exits, or more than ``maxsize`` items fail: callers only queue work that a sweeper
    can redo (events wait in the backend's outbox, alerts stay ``pending``). ``on_idle`` runs
    on the thread whenever the queue runs empty (e.g. to close a database connection).
    """

    def __init__(
        self,
        name: str,
        handler: Callable[[list[Any]], Sequence[Any]],
        *,
        maxsize: int = 10_000,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        self.maxsize = maxsize
        self.on_idle = on_idle
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        # Also the after-fork hook: a child inherits neither the thread nor the parent's items.
        self._queue: queue.Queue[Any] = queue.Queue(self.maxsize)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._unfinished = 0  # new items queued or being handled: flush() waits for 0
        self._failed: list[Any] = []  # waiting for their retry
        self._retrying = 0  # failed items being handled again
        self._last_log = -LOG_EVERY_SECONDS
        # discard() starts a new generation: items queued before it are dropped when taken,
        # the failures of a batch in hand are not kept for a retry, and the retry waits start
        # afresh (``_fresh``: the thread ends its tenacity loop at the next step).
        self._generation = 0
        self._handling = False  # the thread is inside handler() with a batch
        self._fresh = False

    def put(self, item: Any) -> bool:
        """Queue ``item``; False (and a rate-limited warning) when the queue is full."""
        self._ensure_thread()
        with self._lock:
            self._unfinished += 1
            generation = self._generation
        try:
            self._queue.put_nowait((generation, item))
        except queue.Full:
            with self._idle:
                self._unfinished -= 1
                self._idle.notify_all()
            self.warn("%s queue is full; an item is left to the sweeper", self.name)
            return False
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued was handled successfully; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._unfinished or self._failed or self._retrying:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    def discard(self, timeout: float = 10.0) -> None:
        """Drop everything queued or waiting for a retry (tests, between tests).

        The batch being handled now is not retried, and this waits (at most ``timeout``
        seconds) for it to end: nothing dropped is handled after this returns, unless that
        batch outlasts the timeout. The retry waits start afresh.
        """
        deadline = time.monotonic() + timeout
        with self._idle:
            self._generation += 1
            self._failed.clear()
            self._fresh = True
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                self._unfinished -= 1
            while self._handling and time.monotonic() < deadline:
                self._idle.wait(min(deadline - time.monotonic(), 0.05))

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"resilience-{self.name}", daemon=True
                )
                self._thread.start()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                pending = bool(self._failed)  # left by an episode that discard() ended
            self._episode(None if pending else self._queue.get())

    def _episode(self, item: Any) -> None:
        """Handle ``item`` (None: none, retry the failed ones) and what is queued with it;
        while any of them failed, tenacity waits (new items are handled meanwhile) and retries
        the failed ones, until none is left or ``discard()`` asks for a fresh start."""
        new = [] if item is None else [item]

        def attempt() -> bool:
            if new:
                return self._handle_new(new.pop())
            with self._lock:
                fresh, self._fresh = self._fresh, False
            return False if fresh else self._retry_failed()

        Retrying(wait=RETRY_WAIT, retry=retry_if_result(bool), sleep=self._handle_new_for)(attempt)

    def _handle_new(self, first: Any) -> bool:
        """Handle ``first`` and whatever else is queued (up to ``BATCH``), on their first try;
        True when failed items wait for a retry."""
        taken = [first]
        while len(taken) < BATCH:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            generation = self._generation
            items = [item for born, item in taken if born == generation]
            self._handling = bool(items)
        failed = self._call(items) if items else []
        with self._idle:
            if generation == self._generation:  # else discarded while in hand: not retried
                self._failed = (self._failed + failed)[-self.maxsize :]
            self._unfinished = max(0, self._unfinished - len(taken))
            self._handling = False
            self._idle.notify_all()
            return bool(self._failed)

    def _handle_new_for(self, seconds: float) -> None:
        """tenacity's sleep between retries: new items are handled meanwhile, as they come."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self._fresh:
            try:
                first = self._queue.get(timeout=remaining)
            except queue.Empty:
                return
            self._handle_new(first)

    def _retry_failed(self) -> bool:
        """One retry of every failed item; True while some are still waiting (or new ones)."""
        with self._lock:
            items, self._failed = self._failed, []
            self._retrying = len(items)
            generation = self._generation
            self._handling = bool(items)
        failed = self._call(items) if items else []
        with self._idle:
            if generation == self._generation:  # else discarded while in hand: not retried
                self._failed = (failed + self._failed)[-self.maxsize :]
            self._retrying = 0
            self._handling = False
            self._idle.notify_all()
            return bool(self._failed)

    def _call(self, items: list[Any]) -> list[Any]:
        """``handler(items)``: the items that failed (all of them if it raised)."""
        try:
            failed = list(self.handler(items))
        except Exception as exc:
            failed = items
            self.warn(
                "%s: %d item(s) failed, will retry: %s", self.name, len(items), describe_error(exc)
            )
        if self.on_idle is not None and self._queue.empty():
            try:
                self.on_idle()
            except Exception:  # an idle hook must never kill the thread
                logger.debug("%s idle hook failed", self.name, exc_info=True)
        return failed

    def warn(self, msg: str, *args: Any) -> None:
        """A WARNING on logger ``resilience``, at most once per minute per queue."""
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            logger.warning(msg, *args)


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
