"""BackgroundQueue: never blocks the producer, retries failures with backoff, flush waits."""

import threading
import time

from resilience.writer import BackgroundQueue


def test_put_never_blocks_and_drops_when_full():
    busy, release = threading.Event(), threading.Event()
    handled = []

    def slow(items):
        busy.set()
        release.wait(5)
        handled.extend(items)
        return []

    queue = BackgroundQueue("test-full", slow, maxsize=3)
    assert queue.put(0)
    assert busy.wait(5)  # the thread is stuck handling item 0
    started = time.perf_counter()
    results = [queue.put(i) for i in range(1, 10)]
    assert time.perf_counter() - started < 2.0  # a full queue refuses at once, never waits 5 s
    assert results == [True] * 3 + [False] * 6
    release.set()
    assert queue.flush(5)
    assert sorted(handled) == [0, 1, 2, 3]


def test_failed_items_are_retried_until_they_succeed():
    attempts = []

    def flaky(items):
        attempts.append(list(items))
        return items if len(attempts) < 3 else []

    queue = BackgroundQueue("test-retry", flaky)
    queue.put("event")
    assert not queue.flush(0.2)  # first retry is due after 0.5 s
    assert queue.flush(10)
    assert attempts == [["event"], ["event"], ["event"]]


def test_a_raising_handler_keeps_the_thread_alive():
    calls = []

    def broken(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("database down")
        return []

    queue = BackgroundQueue("test-raise", broken)
    queue.put(1)
    assert queue.flush(10)
    queue.put(2)
    assert queue.flush(10)
    assert calls[-1] == [2]


def test_discard_drops_pending_work():
    tried = threading.Event()

    def failing(items):
        tried.set()
        return items  # always fails

    queue = BackgroundQueue("test-discard", failing)
    queue.put("x")
    assert tried.wait(5)  # the thread has taken it, failed, and holds it for a retry
    assert not queue.flush(0.1)
    queue.discard()
    assert queue.flush(0.1)
