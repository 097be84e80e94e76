"""Rate-limited logging: at most one record per interval, with a count of those held back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any


class ThrottledLog:
    """Log through ``logger`` at most once every ``interval`` seconds of ``clock``.

    For things that happen per call or per request (a refused request, an unreachable backend
    seen by each health probe): the first one is logged, the following ones within ``interval``
    are counted, and the next record logged says how many were suppressed. Thread-safe.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._suppressed = 0

    def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> bool:
        """Log now if the interval has passed since the last record (True), else count it."""
        now = self._clock()
        with self._lock:
            if now - self._last < self.interval:
                self._suppressed += 1
                return False
            self._last = now
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self.logger.log(level, message, *args, **kwargs)
        return True
