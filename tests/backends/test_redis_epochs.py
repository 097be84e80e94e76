"""Redis lost a circuit (FLUSHDB, keys deleted or evicted): its old tickets never count again.

The circuit comes back under a new epoch with its generation at 0 and permit ids from ``p1``,
so a ticket of the lost incarnation can match the new one's generation and permit: only the
epoch tells them apart.
"""

from __future__ import annotations

import pytest
import redis as redis_py

from resilience.engine import Policy
from tests.backends.contract import fail
from tests.backends.redis_helpers import make_backend


@pytest.fixture
def backend(redis_url, clock):
    instance = make_backend(redis_url, clock)
    yield instance
    instance.close()


@pytest.fixture
def client(redis_url):
    direct = redis_py.Redis.from_url(redis_url, decode_responses=True)
    yield direct
    direct.close()


@pytest.fixture(params=["flushdb", "del"])
def lose(request, backend, client):
    """Empties the circuit's keys from under the backend, as FLUSHDB or an eviction would."""

    def lose_circuit(name: str) -> None:
        if request.param == "flushdb":
            client.flushdb()
        else:
            assert client.delete(*backend._keys(name)) >= 1

    return lose_circuit


def test_a_closed_ticket_of_a_lost_circuit_is_not_counted(backend, client, lose):
    policy = Policy(failure_threshold=1)
    old = backend.acquire("lost", policy)
    # The first acquire stores the epoch the ticket carries.
    assert old.epoch and client.hget(backend._keys("lost")[0], "epoch") == old.epoch
    lose("lost")
    new = backend.acquire("lost", policy)
    assert new.epoch not in ("", old.epoch) and new.generation == old.generation == 0
    assert backend.record(old, policy, False, 1) == []
    snap = backend.snapshot("lost", policy)
    assert (snap["state"], snap["consecutive_failures"], snap["calls_in_window"]) == (
        "closed",
        0,
        0,
    )
    [opened] = backend.record(new, policy, False, 1)
    assert opened.id == f"{new.epoch}:1"


def test_a_trial_of_a_lost_circuit_neither_closes_nor_frees_the_new_trial(
    backend, client, lose, clock
):
    policy = Policy(failure_threshold=1, recovery_timeout=1)
    fail(backend, "trial", policy)
    clock.advance(1)
    old = backend.acquire("trial", policy)
    lose("trial")
    fail(backend, "trial", policy)
    clock.advance(1)
    new = backend.acquire("trial", policy)
    assert (new.state, new.generation, new.permit) == (old.state, old.generation, old.permit)
    backend.release(old, policy)
    assert backend.snapshot("trial", policy)["half_open_permits"] == 1
    assert backend.record(old, policy, True, 1) == []
    assert backend.snapshot("trial", policy)["state"] == "half_open"
    assert [t.kind for t in backend.record(new, policy, True, 1)] == ["closed"]


def test_deferred_successes_of_a_lost_circuit_are_dropped(backend, lose):
    policy = Policy(failure_threshold=3)
    old = backend.acquire("deferred", policy)
    lose("deferred")
    new = backend.acquire("deferred", policy)
    assert backend.record(old, policy, True, 1) == []  # deferred, under the old epoch
    assert backend.health()["deferred_successes"] == 1
    assert backend.snapshot("deferred", policy)["calls_in_window"] == 0
    # A success of the new epoch cannot join them: both are sent, only it counts.
    assert backend.record(new, policy, True, 1) == []
    backend.flush()
    assert backend.snapshot("deferred", policy)["calls_in_window"] == 1
    assert backend.health()["degraded"] is False


def test_deferred_successes_sent_after_the_loss_are_dropped(backend, lose):
    policy = Policy(failure_threshold=3)
    ticket = backend.acquire("sent", policy)
    for _ in range(3):
        backend.record(ticket, policy, True, 1)
    assert backend.health()["deferred_successes"] == 3
    lose("sent")
    backend.flush()
    assert backend.snapshot("sent", policy)["calls_in_window"] == 0
