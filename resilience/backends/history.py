"""The outcome history's feed: this process's call counts, sent to its backend every few seconds."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from resilience import series, stats

logger = logging.getLogger("resilience")

# The background thread sends every feed's counts at each multiple of FLUSH_SECONDS of the
# system clock, LEAD_SECONDS early: each count is then stored in the 10-second bucket it was
# made in, unless the thread wakes more than LEAD_SECONDS late (docs/history.md, "Accuracy").
FLUSH_SECONDS = 5.0
LEAD_SECONDS = 0.05
# Buckets kept while the backend cannot store them (Redis down): the last 15 minutes.
MAX_UNSENT = 90

# {10-second bucket start (ms): {circuit: history vector (resilience.series)}}
Batches = dict[int, dict[str, list[int]]]


class HistoryFeed:
    """Sends the counts of ``resilience.stats`` made since its last send to one backend.

    The call path only increments those counters (as it always did); the feed takes the
    differences of two copies, so no call waits for it and none is counted twice. Sent by a
    background thread every ``FLUSH_SECONDS``, by ``flush()`` (``Backend.flush``), at exit, and
    by ``close()``. What the backend cannot take (``store`` returns False) waits here, at most
    ``MAX_UNSENT`` buckets, and goes with the next send.
    """

    def __init__(self, store: Callable[[Batches], bool], now_ms: Callable[[], int]) -> None:
        # The thread must not keep the backend alive: the store is held weakly.
        self._store = weakref.WeakMethod(store) if hasattr(store, "__self__") else (lambda: store)
        self._now_ms = now_ms
        with _thread_lock:
            # The first feed of the process (or the successor of a closed one) sends what was
            # counted while none was fed: a forced-open circuit never builds the backend, and a
            # call may end while a settings change replaces it.
            self._reset(None if _feeds else _handed_over)
            _feeds.add(self)
        _start_thread()

    def _reset(self, sent: dict[str, list[int]] | None = None) -> None:
        """Start from ``sent`` (what was sent already), else from the counts as they are: also
        in a forked child, whose parent sends the counts it made before the fork (and whose lock
        a parent thread may have held)."""
        self._lock = threading.Lock()
        self._sent = stats.copy() if sent is None else sent
        self._unsent: Batches = {}
        self._closed = False

    def flush(self) -> None:
        """Send what was counted since the last send, in the bucket of the backend clock's now;
        nothing once closed (the thread may hold a feed closed since: the next feed sends)."""
        with self._lock:
            if not self._closed:
                self._send()

    def _send(self) -> None:
        """Under the lock: take the counts since the last send and store them."""
        current = stats.copy()
        start = self._now_ms() // series.FINE_MS * series.FINE_MS
        for name, values in current.items():
            vector = stats.delta(values, self._sent.get(name))
            if vector is not None:
                row = self._unsent.setdefault(start, {})
                if name in row:
                    series.add(row[name], vector)
                else:
                    row[name] = vector
        self._sent = current
        _hand_over(current)
        store = self._store()
        if not self._unsent or store is None:
            return
        batches, self._unsent = self._unsent, {}
        try:
            kept = not store(batches)
        except Exception:  # a store must not raise; if it does, what it had is lost
            logger.exception("resilience: the outcome history could not be stored")
            kept = False
        if kept:
            self._unsent = batches
            for old in sorted(batches)[:-MAX_UNSENT]:
                del batches[old]

    def close(self) -> None:
        """Send what is left; the feed sends nothing afterwards."""
        _feeds.discard(self)
        with self._lock:
            if not self._closed:
                self._send()
                self._closed = True


_feeds: weakref.WeakSet[HistoryFeed] = weakref.WeakSet()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None
# The thread waits on this event, never set: ``time.sleep`` would be whatever a test or a
# library patched ``time.sleep`` to (a no-op patch turned the thread into a busy loop).
_pause = threading.Event()
# The counts (``stats.copy()``) up to which a feed took charge of sending: where the next feed
# starts when none is live. Nothing before the first feed; in a forked child, the counts at the
# fork (its parent's to send).
_handed_over: dict[str, list[int]] = {}


def _hand_over(sent: dict[str, list[int]]) -> None:
    global _handed_over
    _handed_over = sent


def _start_thread() -> None:
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="resilience-history", daemon=True)
            _thread.start()


def _flush_all() -> None:
    for feed in list(_feeds):
        try:
            feed.flush()
        except Exception:  # the thread (or the exit) must outlive one broken feed
            logger.exception("resilience: sending the outcome history failed")


def _run() -> None:
    global _thread
    while True:
        _pause.wait(FLUSH_SECONDS - (time.time() + LEAD_SECONDS) % FLUSH_SECONDS)
        with _thread_lock:
            if not _feeds:
                _thread = None  # restarted by the next feed
                return
        _flush_all()


def _after_fork_in_child() -> None:
    global _thread, _thread_lock
    _thread_lock = threading.Lock()
    _thread = None
    _hand_over(stats.copy())
    feeds = list(_feeds)
    for feed in feeds:
        feed._reset()
    if feeds:
        _start_thread()


atexit.register(_flush_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
