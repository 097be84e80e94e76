"""The system clock and the manual test clock."""

from __future__ import annotations

import threading
import time

import pytest

from resilience.clock import ManualClock, SystemClock


def test_system_clock_is_epoch_milliseconds():
    before = int(time.time() * 1000)
    now = SystemClock().now_ms()
    after = int(time.time() * 1000)
    assert isinstance(now, int)
    assert before - 1 <= now <= after + 1


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(start_ms=5_000)
    assert clock.now_ms() == clock.now_ms() == 5_000
    assert clock.advance(1.5) == 6_500
    clock.advance(0.0004)  # rounds to the millisecond
    assert clock.now_ms() == 6_500
    clock.set(1_000)
    assert clock.now_ms() == 1_000
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_manual_clock_advances_atomically():
    clock = ManualClock(start_ms=0)
    barrier = threading.Barrier(8)

    def tick():
        barrier.wait()
        for _ in range(2_000):
            clock.advance(0.001)

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert clock.now_ms() == 16_000
