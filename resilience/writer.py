"""A bounded queue drained by one daemon thread per process, with retry and backoff on failure."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from resilience.sanitize import describe_error

logger = logging.getLogger("resilience")

BATCH = 100
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
LOG_EVERY_SECONDS = 60.0

_instances: weakref.WeakSet[BackgroundQueue] = weakref.WeakSet()


class BackgroundQueue:
    """Hand items to ``handler`` on a daemon thread; ``put`` never blocks and never raises.

    ``handler(items)`` returns the items that failed (or raises: all of them failed); failed
    items are retried with exponential backoff, keeping at most ``maxsize`` of them. Whatever is
    dropped (queue full, too many failures, process exit) must be recoverable elsewhere: callers
    only queue work that a sweeper can redo. ``on_idle`` runs on the thread whenever the queue
    runs empty (e.g. to close a database connection).
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
        self._retry_at = 0.0
        self._backoff = RETRY_MIN_SECONDS
        self._last_log = -LOG_EVERY_SECONDS
        # discard() starts a new generation: items queued before it are dropped when taken,
        # and the failures of a batch that was in hand are not kept for a retry.
        self._generation = 0
        self._handling = False  # the thread is inside handler() with a batch

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
        batch outlasts the timeout. The retry backoff starts afresh.
        """
        deadline = time.monotonic() + timeout
        with self._idle:
            self._generation += 1
            self._failed.clear()
            self._retry_at = 0.0
            self._backoff = RETRY_MIN_SECONDS
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

    def _done(self, new: int) -> None:
        """The batch taken by ``_take`` was handled (its failures already moved to ``_failed``)."""
        with self._idle:
            self._unfinished = max(0, self._unfinished - new)
            self._retrying = 0
            self._handling = False
            self._idle.notify_all()

    def _take(self) -> tuple[list[Any], int, int]:
        """Block until there is work (new items, or failed ones whose retry is due).

        Returns the items, how many were taken from the queue (the rest are retries; queued
        items from before a ``discard()`` are counted but dropped), and the generation.
        """
        while True:
            with self._lock:
                due = bool(self._failed) and time.monotonic() >= self._retry_at
                wait = max(0.0, self._retry_at - time.monotonic()) if self._failed else None
            taken: list[tuple[int, Any]] = []
            if not due:
                try:
                    taken.append(self._queue.get(timeout=wait))
                except queue.Empty:
                    continue
            while len(taken) < BATCH:
                try:
                    taken.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                generation = self._generation
                items = [item for born, item in taken if born == generation]
                if due or (self._failed and time.monotonic() >= self._retry_at):
                    items = self._failed + items
                    self._retrying, self._failed = len(self._failed), []
                self._handling = bool(items)
            if items:
                return items, len(taken), generation
            self._done(len(taken))  # only discarded items

    def _run(self) -> None:
        while True:
            items, new, generation = self._take()
            try:
                failed = list(self.handler(items))
            except Exception as exc:
                failed = items
                self.warn(
                    "%s: %d item(s) failed, will retry: %s",
                    self.name,
                    len(items),
                    describe_error(exc),
                )
            with self._idle:
                if generation != self._generation:
                    failed = []  # discarded while in hand: not retried
                if failed:
                    self._failed = (self._failed + failed)[-self.maxsize :]
                    self._retry_at = time.monotonic() + self._backoff
                    self._backoff = min(self._backoff * 2, RETRY_MAX_SECONDS)
                else:
                    self._backoff = RETRY_MIN_SECONDS
                empty = self._queue.empty()
            if empty and self.on_idle is not None:
                try:
                    self.on_idle()
                except Exception:  # an idle hook must never kill the thread
                    logger.debug("%s idle hook failed", self.name, exc_info=True)
            self._done(new)

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
