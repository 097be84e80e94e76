"""Degraded mode of the Redis backend: outage bookkeeping, re-probes, rate-limited logging."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from resilience import sanitize
from resilience.backends.memory import MemoryBackend
from resilience.engine import Ticket
from resilience.logs import ThrottledLog

logger = logging.getLogger("resilience")

ON_ERROR_CHOICES = ("local", "allow", "deny")
OUTAGE_REASON_CHARS = 300
_TICKET_FIELDS = tuple(f.name for f in fields(Ticket))


@dataclass(slots=True, eq=False)
class FallbackTicket(Ticket):
    """A ticket issued while Redis was unusable; it remembers where its outcome belongs.

    ``origin`` is the per-process ``MemoryBackend`` that issued it (``ON_BACKEND_ERROR =
    "local"``), or ``None`` for "allow"/"deny" tickets, whose outcome is not recorded at all.
    Its result goes back to ``origin`` even if Redis is healthy again by then.
    """

    origin: MemoryBackend | None = None

    @classmethod
    def wrap(cls, ticket: Ticket, origin: MemoryBackend) -> FallbackTicket:
        # mypy cannot tell that the star-args stop before ``origin`` (a false positive).
        return cls(*(getattr(ticket, name) for name in _TICKET_FIELDS), origin=origin)  # type: ignore[misc]


class Outage:
    """Whether Redis is usable, why not, and when to look again.

    ``trip()`` is called by the backend after a failed Redis call; from then on the call path
    does not touch Redis. ``maybe_probe()`` (cheap, called by degraded calls) starts at most one
    background ``PING`` every ``interval`` seconds; when one answers, the outage ends. Every
    outage gets a fresh per-process ``MemoryBackend`` (``fallback``), so that state from an
    outage an hour ago does not leak into this one.
    """

    def __init__(
        self,
        ping: Callable[[], Any],
        make_fallback: Callable[[], MemoryBackend],
        interval: float,
        log_interval: float,
        where: str,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._ping = ping
        self._make_fallback = make_fallback
        self.interval = interval
        self.where = where
        self.secrets = secrets
        self._lock = threading.Lock()
        self.active = False
        self.reason = ""
        self.since: float | None = None  # wall-clock seconds, for health()
        self.outages = 0
        self._started = 0.0  # monotonic
        self._next_probe = 0.0
        self._probing = False
        self._log_throttle = ThrottledLog(logger, log_interval)
        self.fallback: MemoryBackend | None = None
        # Fallbacks of past outages that may still hold unacknowledged transitions.
        self.past_fallbacks: list[MemoryBackend] = []

    def current_fallback(self) -> MemoryBackend:
        with self._lock:
            if self.fallback is None:
                self.fallback = self._make_fallback()
            return self.fallback

    def all_fallbacks(self) -> list[MemoryBackend]:
        current = [self.fallback] if self.fallback is not None else []
        return [*self.past_fallbacks, *current]

    def fresh(self) -> bool:
        """An outage whose next re-probe is not due yet: operator reads answer from this
        process's state instead of waiting for Redis again (the re-probe is the one that asks)."""
        return self.active and time.monotonic() < self._next_probe

    def trip(self, exc: BaseException) -> None:
        now = time.monotonic()
        reason = sanitize.describe_error(exc, OUTAGE_REASON_CHARS, secrets=self.secrets)
        with self._lock:
            starting = not self.active
            if starting:
                self.active = True
                self.since = time.time()
                self._started = now
                self.outages += 1
                if self.fallback is not None:
                    self.past_fallbacks = [*self.past_fallbacks[-7:], self.fallback]
                self.fallback = self._make_fallback()
                self._next_probe = now + self.interval
            self.reason = reason
        self._log(
            logging.WARNING,
            "Redis circuit-state backend %s failed (%s); ON_BACKEND_ERROR behaviour until a "
            "re-probe succeeds (every %ss).",
            self.where,
            reason,
            self.interval,
        )

    def maybe_probe(self) -> None:
        """Start a background re-probe if one is due (never blocks the caller)."""
        if self._probing or time.monotonic() < self._next_probe:
            return
        with self._lock:
            if self._probing or not self.active:
                return
            self._probing = True
        thread = threading.Thread(target=self._probe, name="resilience-redis-probe", daemon=True)
        thread.start()

    def probe(self) -> bool:
        """``PING`` now (one short timeout at most); ends the outage if Redis answers."""
        with self._lock:
            self._probing = True
        return self._probe()

    def _probe(self) -> bool:
        try:
            self._ping()
        except Exception as exc:  # any failure keeps us degraded; never raise from a probe
            with self._lock:
                self._probing = False
                self.reason = sanitize.describe_error(
                    exc, OUTAGE_REASON_CHARS, secrets=self.secrets
                )
                self._next_probe = time.monotonic() + self.interval
            self._log(
                logging.WARNING,
                "Redis circuit-state backend %s still unavailable (%s).",
                self.where,
                self.reason,
            )
            return False
        with self._lock:
            was_active, self.active = self.active, False
            self._probing = False
            duration = time.monotonic() - self._started
        if was_active:
            logger.info(
                "Redis circuit-state backend %s reachable again after %.1fs.",
                self.where,
                duration,
            )
        return True

    def _log(self, level: int, message: str, *args: Any) -> None:
        self._log_throttle.log(level, message, *args)

    def describe(self) -> dict[str, Any]:
        return {
            "degraded": self.active,
            "reason": self.reason if self.active else "",
            "degraded_since": self.since if self.active else None,
            "next_probe_in": max(0.0, self._next_probe - time.monotonic()) if self.active else None,
            "outages": self.outages,
        }
