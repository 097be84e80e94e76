"""What the Redis backend keeps in-process: rejections, deferred successes, outbox entries."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from resilience.engine import MONITOR, OPEN, Policy, Ticket, Transition

logger = logging.getLogger("resilience")

# How long the background thread gathers urgent successes before sending them: well under
# one switch interval of the interpreter, far less than a window bucket.
URGENT_BATCH_SECONDS = 0.002


def policy_args(policy: Policy) -> list[Any]:
    """A policy as the scripts read it (``policy_from`` in common.lua)."""
    return [
        policy.failure_threshold,
        policy.failure_rate_threshold,
        policy.minimum_calls,
        policy.bucket_ms,
        repr(float(policy.recovery_timeout)),
        repr(float(policy.backoff_multiplier)),
        repr(float(policy.max_recovery_timeout)),
        policy.success_threshold,
    ]


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class OpenCache:
    """Rejections remembered per circuit, so that an open circuit costs no round trip.

    An entry answers for its circuit until the trial time (``until``) or until ``fresh_until``
    (``POLICY_REFRESH_SECONDS`` after the rejection, so that a reset made by another process is
    seen in time), whichever comes first, and only for the policy it was computed with (a larger
    ``half_open_max_calls`` may admit at once). Times are in the backend's local milliseconds.
    Past ``fresh_until``, the trial time (or for another policy) the entry no longer answers but
    is kept, as what this process last knew, until Redis answers again (``put``/``discard``):
    an outage that starts right then still knows the circuit is open (``known_open``), and the
    next acquire goes straight to the script (``name in cache``: not closed when last seen).
    Any operation of this process on the circuit drops its entry.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Policy, str, str, int, int, int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str, policy: Policy, now: int) -> Ticket | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        cached_policy, state, epoch, generation, until, fresh_until, since = entry
        if now < since:
            self._entries.pop(name, None)  # the clock stepped back: forget what it said
            return None
        if now >= min(until, fresh_until) or (
            cached_policy is not policy and cached_policy != policy
        ):
            return None
        monitor = policy.mode == MONITOR
        return Ticket(name, monitor, state, generation, None, until - now, monitor, (), epoch)

    def put(self, name: str, policy: Policy, ticket: Ticket, now: int, refresh_ms: int) -> None:
        if ticket.retry_after_ms > 0 and refresh_ms > 0:
            until = now + ticket.retry_after_ms
            self._entries[name] = (
                policy, ticket.state, ticket.epoch, ticket.generation, until, now + refresh_ms,
                now,
            )  # fmt: skip

    def known_open(self, now: int) -> list[tuple[str, int]]:
        """``(circuit, trial time)`` of every circuit last seen open whose trial is still ahead."""
        # A copy: other threads put and pop entries meanwhile.
        entries = self._entries.copy()
        return [
            (name, entry[4])
            for name, entry in entries.items()
            if entry[1] == OPEN and entry[6] <= now < entry[4]
        ]

    def discard(self, name: str) -> None:
        self._entries.pop(name, None)

    def clear(self) -> None:
        self._entries.clear()


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
                self._stop.wait(URGENT_BATCH_SECONDS)
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


class Outboxed:
    """The exact JSON of transitions this process saw (script replies, outbox reads), so that
    acknowledging one is a single ``LREM`` of its entry; the oldest are forgotten past ``limit``.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._raw: dict[tuple[str, str], str] = {}  # (circuit, id) -> JSON, oldest first
        self._lock = threading.Lock()

    def parse(self, raw: str) -> Transition:
        transition = Transition.from_json(raw)
        with self._lock:
            self._raw[(transition.circuit, transition.id)] = raw
            if len(self._raw) > self._limit:
                del self._raw[next(iter(self._raw))]
        return transition

    def take(self, name: str, ids: list[str]) -> list[str] | None:
        """The entries of ``ids`` in the outbox of ``name``; None if one was never seen here."""
        with self._lock:
            raws = [self._raw.pop((name, i), None) for i in ids]
        return None if None in raws else raws  # type: ignore[return-value]


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
            self._stop.wait(URGENT_BATCH_SECONDS)  # let the calls ending meanwhile join in
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
