"""Real processes sharing one private redis-server: one trip, one trial, across all of them."""

from __future__ import annotations

import multiprocessing
import random
import time
import traceback

import pytest

from tests.support.spawned import gather

PROCESSES = 16
THRESHOLD = 5
RECOVERY = 1.5


def _server_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def _worker(url, prefix, name, start, trial, results):
    """One process: fail until rejected, then compete for the trial permit."""
    try:
        import redis

        from resilience.backends.redis import RedisBackend
        from resilience.engine import Policy

        rng = random.Random()
        # No injected clock: every process takes time from Redis TIME.
        backend = RedisBackend(url=url, prefix=prefix, socket_timeout=5.0)
        client = redis.Redis.from_url(url)
        policy = Policy(failure_threshold=THRESHOLD, recovery_timeout=RECOVERY)
        admitted, transitions, rejected = [], [], None
        start.wait(60)
        while rejected is None:
            before = _server_ms(client)
            ticket = backend.acquire(name, policy)
            transitions += [t.to_dict() for t in ticket.transitions]
            if not ticket.admitted:
                rejected = ticket
                break
            admitted.append((before, ticket.generation, ticket.state))
            time.sleep(rng.uniform(0, 0.003))  # the protected call
            transitions += [t.to_dict() for t in backend.record(ticket, policy, False, 1)]
        # Open: nothing is admitted any more, here or (checked by the parent) anywhere.
        later = [backend.acquire(name, policy) for _ in range(200)]
        assert not any(t.admitted for t in later)
        time.sleep(rejected.retry_after_ms / 1000 + 0.05)
        trial.wait(60)
        trials, attempts = [], 0
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            ticket = backend.acquire(name, policy)
            attempts += 1
            transitions += [t.to_dict() for t in ticket.transitions]
            if ticket.admitted:
                trials.append((ticket.state, ticket.permit, ticket.generation))
        results.put(
            {
                "admitted": admitted,
                "transitions": transitions,
                "trials": trials,
                "attempts": attempts,
                "degraded": backend.health()["degraded"],
            }
        )
        backend.close()
    except BaseException:
        results.put({"error": traceback.format_exc()})


@pytest.mark.slow
def test_sixteen_processes_trip_once_and_admit_one_trial(redis_url):
    import redis

    from resilience.backends.redis import RedisBackend
    from resilience.engine import Policy, Transition

    ctx = multiprocessing.get_context("spawn")
    start, trial = ctx.Barrier(PROCESSES), ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    prefix, name = "xproc", "shared"
    procs = [
        ctx.Process(target=_worker, args=(redis_url, prefix, name, start, trial, results))
        for _ in range(PROCESSES)
    ]
    outcomes = gather(procs, results, timeout=120)
    assert not any(o["degraded"] for o in outcomes)

    transitions = [Transition(**t) for o in outcomes for t in o["transitions"]]
    opened = [t for t in transitions if t.kind == "opened"]
    half_opened = [t for t in transitions if t.kind == "half_opened"]
    assert len(opened) == 1, opened
    assert len(half_opened) == 1, half_opened
    [trip] = opened

    admitted = [a for o in outcomes for a in o["admitted"]]
    assert THRESHOLD <= len(admitted) <= THRESHOLD + PROCESSES - 1
    # Every admission happened while the circuit was closed in generation 0, i.e. before the
    # trip (the scripts are atomic) -- and no process even started one after it was committed.
    assert {(gen, state) for _, gen, state in admitted} == {(0, "closed")}
    assert all(before <= trip.at_ms for before, _, _ in admitted)

    trials = [t for o in outcomes for t in o["trials"]]
    assert len(trials) == 1, trials
    assert trials[0][0] == "half_open" and trials[0][2] == half_opened[0].generation
    assert sum(o["attempts"] for o in outcomes) > PROCESSES * 10  # they really competed

    backend = RedisBackend(url=redis_url, prefix=prefix, socket_timeout=5.0)
    try:
        assert [t.kind for t in backend.outbox(name)] == ["opened", "half_opened"]
        snap = backend.snapshot(name, Policy(failure_threshold=THRESHOLD))
        assert (snap["state"], snap["half_open_permits"], snap["trips"]) == ("half_open", 1, 1)
        client = redis.Redis.from_url(redis_url)
        assert client.hget(backend._keys(name)[0], "generation") == b"2"
        client.close()
    finally:
        backend.close()


# --- the same through the decorator, the policy table and the events layer -----------------------

DECORATED = "xproc-decorated"


def _decorated_worker(database, url, start, results):
    """A Django process of its own: policy from the shared test database, state in Redis."""
    try:
        import os

        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        from django.conf import settings

        settings.DATABASES["default"].update(database)
        settings.RESILIENCE = {
            "BACKEND": "resilience.backends.redis.RedisBackend",
            "OPTIONS": {"url": url, "prefix": "xdeco", "socket_timeout": 5.0},
        }
        import django

        django.setup()
        from resilience import CircuitOpenError, circuit_breaker, events
        from resilience.backends import get_backend

        rng = random.Random()
        upstream_calls = 0

        @circuit_breaker(DECORATED)
        def call_upstream():
            nonlocal upstream_calls
            upstream_calls += 1
            time.sleep(rng.uniform(0, 0.003))
            raise ConnectionError("upstream down")

        start.wait(120)
        rejected_at = None
        for attempt in range(1000):
            try:
                call_upstream()
            except ConnectionError:
                continue
            except CircuitOpenError:
                rejected_at = attempt
                break
        rejections = 0
        for _ in range(100):  # once rejected, rejected every time
            try:
                call_upstream()
            except CircuitOpenError:
                rejections += 1
        flushed = events.flush(10)
        results.put(
            {
                "upstream_calls": upstream_calls,
                "rejected_at": rejected_at,
                "rejections": rejections,
                "flushed": flushed,
                "degraded": get_backend().health()["degraded"],
            }
        )
    except BaseException:
        results.put({"error": traceback.format_exc()})


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sixteen_django_processes_record_one_opened_event(redis_url):
    from django.db import connection

    from resilience.models import BreakerPolicy, CircuitEvent

    BreakerPolicy.objects.create(
        name=DECORATED, failure_threshold=THRESHOLD, recovery_timeout=60, alert_on_open=False
    )
    database = {k: v for k, v in connection.settings_dict.items() if k in ("ENGINE", "NAME")}
    database.update({k: connection.settings_dict[k] for k in ("USER", "PASSWORD", "HOST", "PORT")})
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_decorated_worker, args=(database, redis_url, start, results))
        for _ in range(PROCESSES)
    ]
    outcomes = gather(procs, results, timeout=180)
    assert all(o["flushed"] and not o["degraded"] for o in outcomes)
    assert all(o["rejected_at"] is not None and o["rejections"] == 100 for o in outcomes)
    upstream = sum(o["upstream_calls"] for o in outcomes)
    assert THRESHOLD <= upstream <= THRESHOLD + PROCESSES - 1
    opened = CircuitEvent.objects.filter(circuit=DECORATED, kind="opened")
    assert opened.count() == 1
    assert CircuitEvent.objects.filter(circuit=DECORATED).count() == 1


# --- a deferred success that lands after a later run of failures (issue 12, defect 1) ----------

LATE = "xproc-late-success"


def _late_success_worker(url, prefix, done, failed, sent, results):
    """Process A: one success (deferred), sent only once process B has failed 4 times."""
    try:
        from resilience.backends.redis import RedisBackend
        from resilience.engine import Policy

        backend = RedisBackend(url=url, prefix=prefix, socket_timeout=5.0)
        policy = Policy(failure_threshold=THRESHOLD)
        ticket = backend.acquire(LATE, policy)
        assert backend.record(ticket, policy, True, 1) == []
        queued = backend.health()["deferred_successes"]
        done.set()
        assert failed.wait(60)
        backend.close()  # sends the queued success now: after B's failures, as the thread would
        sent.set()
        results.put({"queued": queued})
    except BaseException:
        results.put({"error": traceback.format_exc()})
        done.set()
        sent.set()


@pytest.mark.slow
def test_a_late_deferred_success_does_not_erase_later_failures_of_another_process(redis_url):
    """Process A succeeds once; 7 ms later process B fails 4 times; A's deferred success lands
    after those; B's 5th failure must still open the circuit (5 failures after A's success)."""
    from resilience.backends.redis import RedisBackend
    from resilience.engine import Policy

    ctx = multiprocessing.get_context("spawn")
    done, failed, sent = ctx.Event(), ctx.Event(), ctx.Event()
    results = ctx.Queue()
    prefix = "xlate"
    proc = ctx.Process(
        target=_late_success_worker, args=(redis_url, prefix, done, failed, sent, results)
    )
    proc.start()
    backend = RedisBackend(url=redis_url, prefix=prefix, socket_timeout=5.0)
    policy = Policy(failure_threshold=THRESHOLD)
    try:
        assert done.wait(60)
        time.sleep(0.007)  # B's failures come after A's success, also by Redis TIME
        for _ in range(THRESHOLD - 1):
            assert backend.record(backend.acquire(LATE, policy), policy, False, 1) == []
        failed.set()
        assert sent.wait(60)
        outcome = results.get(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["queued"] == 1  # it really was deferred
        ticket = backend.acquire(LATE, policy)
        assert ticket.admitted
        assert [t.kind for t in backend.record(ticket, policy, False, 1)] == ["opened"]
        assert backend.snapshot(LATE, policy)["consecutive_failures"] == THRESHOLD
    finally:
        backend.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
