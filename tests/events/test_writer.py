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


def test_discard_drops_the_batch_being_handled_and_its_backoff():
    """What a handler is working on when ``discard()`` runs is not kept for a retry, and the
    next work starts from the shortest backoff: nothing of the discarded work reaches what is
    queued afterwards (tests discard between tests)."""
    busy, release = threading.Event(), threading.Event()
    calls = []

    def failing(items):
        calls.append(list(items))
        if items == ["old"]:
            busy.set()
            assert release.wait(5)
            return items
        return [] if len(calls) > 2 else items  # "new" fails once, then succeeds

    queue = BackgroundQueue("test-discard-in-flight", failing)
    for _ in range(4):  # earlier failures: the backoff has grown to 8 s
        queue._backoff *= 2
    queue.put("old")
    assert busy.wait(5)  # the thread is handling "old" (and will fail it)
    discarding = threading.Thread(target=queue.discard)
    discarding.start()
    discarding.join(0.2)
    assert discarding.is_alive()  # discard waits for the batch in hand...
    release.set()
    discarding.join(5)
    assert not discarding.is_alive()
    assert queue.flush(0.1)  # ...and drops it: "old" is not retried
    queue.put("new")
    assert queue.flush(5)  # retried after 0.5 s, not after the 8 s reached before discard
    assert calls == [["old"], ["new"], ["new"]]
