"""Closed-state successes the Redis backend holds back, and the thread that sends them."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from resilience.backends.redis_local import common
from resilience.backends.redis_local.common import policy_args
from resilience.engine import Policy, Ticket


class Pending:
    """Deferred successes of one circuit: all of one closed epoch and generation, one policy."""

    __slots__ = ("created", "epoch", "generation", "pairs", "policy", "urgent")

    def __init__(self, epoch: str, generation: int, policy: Policy) -> None:
        self.epoch = epoch
        self.generation = generation
        self.policy = policy
        self.pairs: list[list[int]] = []  # [time, count]; time as produced by the stamp
        self.created = time.monotonic()
        self.urgent = False  # sent by the background thread at once, not after max_age

    def args(self, relative_to: int | None) -> list[Any]:
        """The ``apply_successes`` ARGV tail; ``relative_to`` (local ms) sends ages instead."""
        out = [self.epoch, self.generation, *policy_args(self.policy), len(self.pairs)]
        for at, count in self.pairs:
            out.append(at if relative_to is None else f"-{max(0, relative_to - at)}")
            out.append(count)
        return out


class Deferred:
    """Closed-state successes waiting to ride along with this process's next script call.

    A success that cannot cause a transition (the backend decides which) need not be sent on
    its own: the next ``record``/``reset`` of the same circuit applies it first (in order,
    with its own timestamp), and a background thread sends whatever is older than
    ``max_age()`` seconds, or urgent, on its own. While that thread is sending a circuit's
    successes, ``take``/``peek`` of the circuit wait for it (at most ``wait`` seconds), so
    that nothing overtakes them. See docs/redis.md.
    """

    def __init__(
        self,
        flush: Callable[[str, Pending], None],
        max_age: Callable[[], float],
        wait: float = 1.0,
    ) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, Pending] = {}
        self._inflight: dict[str, threading.Event] = {}
        self._held: dict[str, int] = {}  # names the background thread leaves alone meanwhile
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False  # after close(), nothing is deferred: no thread would send it
        self._wake = threading.Event()  # set by close() and by urgent successes
        # The thread must not keep the backend alive: it holds the flush callback weakly.
        self._flush = weakref.WeakMethod(flush) if hasattr(flush, "__self__") else (lambda: flush)
        self._max_age = max_age
        self._wait = wait

    def __bool__(self) -> bool:
        return bool(self._by_name) or bool(self._inflight)

    def __len__(self) -> int:
        return sum(count for p in list(self._by_name.values()) for _, count in p.pairs)

    def _check_fork(self) -> None:
        # A forked child must not send its parent's successes a second time.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._by_name.clear()
            self._inflight.clear()
            self._held.clear()
            self._thread = None

    def add(self, ticket: Ticket, policy: Policy, at: int, urgent: bool = False) -> bool:
        """Defer one success; False when it cannot be (the caller records it now).

        ``urgent``: the background thread sends it at once, with whatever joins it within
        ``URGENT_BATCH_SECONDS`` (the caller just does not wait for it).
        """
        with self._lock:
            self._check_fork()
            if self._closed:
                return False  # a call that outlived its backend (settings changed meanwhile)
            pending = self._by_name.get(ticket.circuit)
            if pending is not None:
                if ticket.epoch != pending.epoch:
                    return False  # the circuit was re-created: let Redis sort out which is live
                if ticket.generation < pending.generation:
                    return True  # a late result: the engine would ignore it too
                if ticket.generation > pending.generation:
                    pending = None  # those belong to a generation that is over
                elif pending.policy is not policy and pending.policy != policy:
                    # The policy changed: the queue goes out first, judged by its own policy
                    # (the record applies it), then this success by the new one.
                    return False
            if pending is None:
                pending = self._by_name[ticket.circuit] = Pending(
                    ticket.epoch, ticket.generation, policy
                )
            pairs = pending.pairs
            if pairs and pairs[-1][0] == at:
                pairs[-1][1] += 1
            else:
                pairs.append([at, 1])
            if urgent:
                pending.urgent = True
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="resilience-redis-flush", daemon=True
                )
                self._thread.start()
        if urgent:
            self._wake.set()
        return True

    def _settled(self, name: str) -> None:
        """Wait while the background thread is sending ``name``'s successes."""
        event = self._inflight.get(name)
        if event is not None:
            event.wait(self._wait)

    def take(self, name: str) -> Pending | None:
        """Remove and return what is waiting for ``name``; the caller sends it first."""
        # Lock-free fast path: the flusher marks a name in flight *before* popping it.
        if name not in self._by_name and name not in self._inflight:
            return None
        while True:
            with self._lock:
                self._check_fork()
                event = self._inflight.get(name)
                if event is None:
                    return self._by_name.pop(name, None)
            if not event.wait(self._wait):  # a stuck flush must not stall the call path
                with self._lock:
                    return self._by_name.pop(name, None)

    @contextmanager
    def held(self, names: list[str]) -> Iterator[None]:
        """Keep the background thread from sending ``names`` while a snapshot reads Redis and
        then adds what still waits here (a send in between would be counted by neither)."""
        with self._lock:
            for name in names:
                self._held[name] = self._held.get(name, 0) + 1
        try:
            for name in names:
                self._settled(name)  # a send already under way lands before the read
            yield
        finally:
            with self._lock:
                urgent = False
                for name in names:
                    if self._held.get(name, 0) > 1:
                        self._held[name] -= 1
                    else:
                        self._held.pop(name, None)
                        pending = self._by_name.get(name)
                        urgent = urgent or (pending is not None and pending.urgent)
            if urgent:
                self._wake.set()  # the background thread skipped it meanwhile: send it now

    def peek(self, name: str) -> Pending | None:
        """A copy of what is waiting for ``name`` (for snapshots), or None."""
        self._settled(name)
        with self._lock:
            pending = self._by_name.get(name)
            if pending is None:
                return None
            copy = Pending(pending.epoch, pending.generation, pending.policy)
            copy.pairs = [list(pair) for pair in pending.pairs]
            return copy

    def flush_all(self, older_than: float = 0.0) -> None:
        """Send (from this thread) everything urgent or that has waited ``older_than`` seconds;
        what another thread is sending meanwhile has landed too when this returns."""
        cutoff = time.monotonic() - older_than
        with self._lock:
            self._check_fork()
            names = [n for n, p in self._by_name.items() if p.urgent or p.created <= cutoff]
            others = list(self._inflight.values())
        for name in names:
            with self._lock:
                if name in self._inflight:
                    others.append(self._inflight[name])
                    continue
                if name in self._held or name not in self._by_name:
                    continue
                # In flight first, then popped: a lock-free take() never sees neither.
                event = self._inflight[name] = threading.Event()
                pending = self._by_name.pop(name)
            try:
                flush = self._flush()
                if flush is not None:
                    flush(name, pending)
            finally:
                with self._lock:
                    self._inflight.pop(name, None)
                event.set()
        for event in others:
            event.wait(self._wait)

    def _run(self) -> None:
        while True:
            max_age = max(0.01, self._max_age())
            if self._wake.wait(max_age / 2):
                # Urgent successes: let the ones made meanwhile join them in one send.
                self._stop.wait(common.URGENT_BATCH_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() sends the rest itself
            self.flush_all(older_than=max_age / 2)
            with self._lock:
                if not self._by_name or self._flush() is None:
                    self._thread = None
                    return

    def close(self) -> None:
        """Stop the background thread (waiting for a send in progress); defer nothing more."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._wait)
