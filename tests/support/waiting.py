"""Waiting on a condition with a bound: the one polling loop of the suite. A test that needs real
time to pass waits for the thing it expects (a row stored, a slot given back, a server up), not
for a fixed time; time inside the package comes from the manual clock (the ``clock`` fixture)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01
) -> bool:
    """Poll ``predicate`` every ``interval`` s until true (True) or ``timeout`` s passed (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for(
    fetch: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01
) -> T | None:
    """Poll ``fetch`` every ``interval`` s until it returns something (that, not None) or
    ``timeout`` s passed (None): a row another process or thread writes, a file it appends to."""
    found: list[T] = []

    def fetched() -> bool:
        value = fetch()
        if value is None:
            return False
        found.append(value)
        return True

    return found[0] if wait_until(fetched, timeout, interval) else None
