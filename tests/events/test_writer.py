"""BackgroundQueue: never blocks the producer, retries failures with backoff (tenacity), loses
nothing to a failing or hung handler, flush waits."""

import threading
import time

from resilience.writer import BackgroundQueue
from tests.support.waiting import wait_until


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


def test_failed_items_wait_longer_each_time_until_they_succeed(monkeypatch):
    """tenacity's exponential wait: 0.5 s, 1 s, 2 s, ... up to 30 s, never giving up; afresh
    for the next failure once everything succeeded. (Its sleep recorded instead of slept.)"""
    waits, attempts = [], []

    def record(self, seconds):
        waits.append(seconds)

    monkeypatch.setattr(BackgroundQueue, "_handle_new_for", record)

    def failing_nine_times(items):
        attempts.append(list(items))
        return items if len(attempts) < 10 else []

    queue = BackgroundQueue("test-schedule", failing_nine_times)
    queue.put("event")
    assert queue.flush(10)
    assert attempts == [["event"]] * 10
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    waits.clear()
    attempts[:] = [["earlier"]] * 7  # the next item fails twice, then succeeds
    queue.put("later")
    assert queue.flush(10)
    assert waits == [0.5, 1]


def test_new_items_are_handled_at_once_while_failed_ones_wait():
    database_back = threading.Event()
    stored = []

    def handler(items):
        failed = [item for item in items if item == "old" and not database_back.is_set()]
        stored.extend(item for item in items if item not in failed)
        return failed

    queue = BackgroundQueue("test-overtake", handler)
    queue.put("old")
    deadline = time.monotonic() + 5
    queue.put("new")  # during the old item's 0.5 s wait
    assert wait_until(lambda: "new" in stored, deadline - time.monotonic())
    assert "old" not in stored
    database_back.set()
    assert queue.flush(10)
    assert sorted(stored) == ["new", "old"]


def test_a_hung_handler_loses_nothing_queued_meanwhile():
    """A hung database: the thread waits inside the handler; what is put meanwhile waits in
    the queue and is handled, each item once, when the handler returns."""
    inside, go = threading.Event(), threading.Event()
    handled = []

    def hung_once(items):
        inside.set()
        go.wait(10)
        handled.extend(items)
        return []

    queue = BackgroundQueue("test-hung", hung_once, maxsize=1000)
    queue.put(0)
    assert inside.wait(5)
    assert all(queue.put(i) for i in range(1, 251))  # never blocks, nothing refused
    assert not queue.flush(0.1)
    go.set()
    assert queue.flush(10)
    assert sorted(handled) == list(range(251))


def test_discard_drops_the_batch_being_handled_and_starts_the_waits_afresh():
    """What a handler is working on when ``discard()`` runs is not kept for a retry, and the
    next work starts from the shortest wait: nothing of the discarded work reaches what is
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
    assert queue.flush(5)  # retried after tenacity's first wait (0.5 s)
    assert calls == [["old"], ["new"], ["new"]]
