"""A known sequence of protected calls, made through a real breaker on a ManualClock: the story
the replay tests play back. tests/test_replay.py builds the same buckets by hand (``STORY``) and
works out every number a replay of them gives.

Policy: failure_threshold 5, recovery_timeout 60 s. Seconds after the start (a multiple of 10 s):

- 0-10: 10 successes; 10-20: 4 failures (a run of 4: no opening); 20-30: 10 successes;
- 30-40: 5 failures, the 5th (32.5 s) opens the circuit; 1 call refused at 35 s;
- 40-90: 2 calls refused every 10 s; 90-100: 1 refused at 91 s, the trial at 93 s succeeds
  (closed), 9 successes follow; 100-110: 10 successes.
"""

import pytest

from resilience import CircuitOpenError, breaker, events

POLICY = {"failure_threshold": 5, "recovery_timeout": 60.0}
OPENED_AT, CLOSED_AT = 32.5, 93.0


def schedule():
    """(seconds after the start, "ok" | "fail" | "refused") in time order."""
    steps = [(0.5 + i, "ok") for i in range(10)]
    steps += [(11.25 + 2.5 * i, "fail") for i in range(4)]
    steps += [(20.5 + i, "ok") for i in range(10)]
    steps += [(30.5 + 0.5 * i, "fail") for i in range(5)]
    steps += [(35.0, "refused")]
    for start in range(40, 90, 10):
        steps += [(start + 2.5, "refused"), (start + 7.5, "refused")]
    steps += [(91.0, "refused"), (93.0, "ok")]
    steps += [(93.5 + 0.7 * i, "ok") for i in range(9)]
    steps += [(100.5 + i, "ok") for i in range(10)]
    return steps


def record(name, clock, backend):
    """Make the calls of ``schedule()`` at their times; each 10-second bucket's counts are sent
    to the history before the clock leaves it (as the feed does, just before each 5 s mark).
    Ends at 110 s, with every event stored. Returns the start (ms)."""
    start = clock.now_ms()
    assert start % 10_000 == 0
    for seconds, what in schedule():
        at = start + round(seconds * 1000)
        if at // 10_000 != clock.now_ms() // 10_000:
            backend.flush()
        clock.set(at)
        if what == "refused":
            with pytest.raises(CircuitOpenError), breaker(name):
                pass
        elif what == "fail":
            with pytest.raises(ConnectionError), breaker(name):
                raise ConnectionError("down")
        else:
            with breaker(name):
                pass
    backend.flush()
    clock.set(start + 110_000)
    assert events.flush(timeout=10)
    return start
