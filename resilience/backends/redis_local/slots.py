"""Bulkhead slots of ended calls on their way back to Redis, and the thread that sends them."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

from resilience.backends.redis_local import common

logger = logging.getLogger("resilience")


class SlotReturns:
    """Bulkhead slots of calls that ended, on their way back to Redis.

    The caller never waits for a give-back: the next acquire of the same circuit in this
    process carries the circuit's waiting slots (``take``), and a background thread sends what
    is left after ``URGENT_BATCH_SECONDS``, all circuits in one pipeline. Slots that could not
    be sent (Redis down) wait here (``restore``) and go with the next acquire or send once
    Redis is back; a killed process's slots lapse with their lease.
    """

    def __init__(self, send: Callable[[dict[str, list[str]]], None]) -> None:
        self._stop = threading.Event()
        # The thread must not keep the backend alive: it holds the send callback weakly.
        self._send = weakref.WeakMethod(send) if hasattr(send, "__self__") else (lambda: send)
        self._reset()
        _slot_returns.add(self)

    def _reset(self) -> None:
        """Start empty with new locks: also in a forked child, whose parent gives back its own
        slots, which has no background thread, and whose locks a parent's thread may have held
        at the fork (the thread holds ``sending`` for a whole round trip)."""
        self._lock = threading.Lock()
        self._by_name: dict[str, list[str]] = {}
        # What the background thread is sending right now: an acquire of the circuit sends
        # these again (ZREM is idempotent), so that it never counts a slot whose give-back has
        # not landed yet.
        self._in_transit: dict[str, list[str]] = {}
        # Held by the background thread while it sends, and by snapshots while they read Redis
        # and then subtract what still waits here (a send in between would fool both).
        self.sending = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        stopped = self._stop.is_set()  # closed in the parent: closed in the child too
        self._stop = threading.Event()
        if stopped:
            self._stop.set()

    def __len__(self) -> int:
        return sum(len(slots) for slots in list(self._by_name.values()))

    def add(self, name: str, slot: str) -> None:
        with self._lock:
            # Checked under the lock: close() sets it, then takes what waits under the lock.
            closed = self._stop.is_set()
            if not closed:
                self._by_name.setdefault(name, []).append(slot)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="resilience-redis-slots", daemon=True
                    )
                    self._thread.start()
        if not closed:
            self._wake.set()
            return
        # Closed (a settings change replaced the backend while the call ran): no thread sends
        # it any more, so it goes now, else it would keep its place until its lease ran out.
        send = self._send()
        if send is not None:
            send({name: [slot]})

    def take(self, name: str) -> list[str]:
        """Remove and return the slots waiting for ``name``, plus those the background thread
        is sending (the caller sends them all, before it counts the slots)."""
        if name not in self._by_name and name not in self._in_transit:  # lock-free: none
            return []
        with self._lock:
            return self._by_name.pop(name, []) + self._in_transit.get(name, [])

    def peek(self, name: str) -> list[str]:
        """The slots of ``name`` not given back yet (for snapshots: as if already given back)."""
        with self._lock:
            return [*self._by_name.get(name, ()), *self._in_transit.get(name, ())]

    def take_all(self) -> dict[str, list[str]]:
        with self._lock:
            waiting, self._by_name = self._by_name, {}
        return waiting

    def drain(self) -> dict[str, list[str]]:
        """``take_all`` once the background thread's send in progress, if any, has landed: a
        flush (at exit too) must not return while a give-back is still on its way."""
        with self.sending:
            return self.take_all()

    def restore(self, waiting: dict[str, list[str]]) -> None:
        """Keep slots whose give-back did not reach Redis (down): the next acquire of their
        circuit, or the next background send, carries them (ZREM is idempotent)."""
        with self._lock:
            for name, slots in waiting.items():
                self._by_name.setdefault(name, []).extend(slots)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(1.0):
                if self._send() is None:
                    return  # the backend is gone
                continue
            self._stop.wait(common.URGENT_BATCH_SECONDS)  # let the calls ending meanwhile join in
            self._wake.clear()
            send = self._send()
            if send is None:
                return
            with self.sending:
                with self._lock:
                    # In transit first, then out of the queue: take()'s lock-free check must
                    # never see them in neither place.
                    waiting = self._in_transit = self._by_name
                    self._by_name = {}
                try:
                    if waiting:
                        send(waiting)
                except Exception:  # the thread must outlive a failing send; leases expire
                    logger.exception("resilience: giving bulkhead slots back failed")
                finally:
                    with self._lock:
                        self._in_transit = {}

    def close(self) -> dict[str, list[str]]:
        """Stop the background thread; returns what still waits (the caller sends it)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)
        return self.take_all()


_slot_returns: weakref.WeakSet[SlotReturns] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for returns in list(_slot_returns):
        returns._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
