"""Clocks in integer Unix milliseconds (since 1970): the system clock and a manual one for tests."""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall-clock time in integer Unix milliseconds."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to; thread-safe, for tests and simulations."""

    __slots__ = ("_lock", "_ms")

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._lock = threading.Lock()
        self._ms = int(start_ms)

    def now_ms(self) -> int:
        return self._ms

    def advance(self, seconds: float) -> int:
        """Move forward by ``seconds`` (rounded to the millisecond); returns the new time."""
        if seconds < 0:
            raise ValueError("a ManualClock cannot go backwards; use set()")
        with self._lock:
            self._ms += round(seconds * 1000)
            return self._ms

    def set(self, ms: int) -> None:
        """Jump to ``ms`` Unix milliseconds (backwards too, to test clock steps)."""
        with self._lock:
            self._ms = int(ms)

    def __repr__(self) -> str:
        return f"ManualClock(start_ms={self._ms})"
