"""Idle per-host HTTP circuits are retired after ``IDLE_CIRCUIT_SECONDS``: their backend state
(memory, or the Redis keys) and their place under ``max_hosts``; open ones and ones another
process still uses are kept. Real HTTP servers, a private Redis, the manual clock."""

import uuid

import pytest
import redis as redis_py
import requests

from resilience import breaker, events
from resilience.backends import get_backend
from resilience.backends.redis import RedisBackend
from resilience.contrib._http import circuits
from resilience.contrib.requests import CircuitBreakerAdapter
from resilience.engine import Policy
from resilience.policies import registry

pytestmark = pytest.mark.django_db(transaction=True)  # events are written by a thread
IDLE = 600


def session(max_hosts=2):
    s = requests.Session()
    adapter = CircuitBreakerAdapter(max_hosts=max_hosts)
    s.mount("http://", adapter)
    return s


def get(url, max_hosts=2):
    with session(max_hosts) as s:
        return s.get(url, timeout=5)


def host(url):
    return "http:" + url.split("//")[1].rstrip("/")


@pytest.fixture
def memory_settings(settings, clock):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.memory.MemoryBackend",
        "OPTIONS": {"clock": clock},
        "IDLE_CIRCUIT_SECONDS": IDLE,
        "DEFAULT_POLICY": {
            "failure_threshold": 1,
            "recovery_timeout": 7200,
            "max_recovery_timeout": 7200,
        },
    }


@pytest.mark.usefixtures("memory_settings")
def test_idle_hosts_give_their_place_and_memory_back(many_hosts, clock, caplog):
    a, b, c = many_hosts.urls(3)
    get(a), get(b)
    assert circuits.hosts == {host(a), host(b)}
    get(c)  # past max_hosts: sent without a circuit
    assert host(c) not in circuits.hosts
    clock.advance(IDLE - 1)
    get(c)  # a, b: not idle for long enough yet
    assert circuits.hosts == {host(a), host(b)}
    clock.advance(60)  # past the idle time, and past the next look for idle circuits
    get(c)
    assert circuits.hosts == {host(c)}
    assert "retired 2 idle per-host HTTP circuit(s)" in caplog.text
    backend = get_backend()
    assert set(backend._circuits) == {host(c)}  # the memory backend forgot them too
    get(a)  # used again: a fresh circuit
    assert circuits.hosts == {host(a), host(c)}
    assert breaker(host(a)).snapshot()["generation"] == 0


@pytest.mark.usefixtures("memory_settings")
def test_an_open_host_is_not_retired(upstream, many_hosts, clock):
    upstream.answer(503)
    assert get(upstream.url()).status_code == 503  # opened (failure_threshold 1)
    assert breaker(host(upstream.url())).state == "open"
    clock.advance(IDLE * 2)
    get(many_hosts.urls(1)[0])  # a new host: looks for idle ones
    assert host(upstream.url()) in circuits.hosts
    assert breaker(host(upstream.url())).state in ("open", "half_open")


@pytest.mark.usefixtures("memory_settings")
def test_zero_keeps_them_for_ever(many_hosts, clock, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "IDLE_CIRCUIT_SECONDS": 0}
    a, b = many_hosts.urls(2)
    get(a, max_hosts=1)
    clock.advance(IDLE * 10)
    get(b, max_hosts=1)
    assert circuits.hosts == {host(a)}


# --- Redis: the keys go, for every process sharing them -------------------------------------


@pytest.fixture
def shared(settings, clock, redis_url):
    options = {"url": redis_url, "prefix": f"idle{uuid.uuid4().hex[:8]}", "clock": clock}
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {**options, "socket_timeout": 2.0},
        "IDLE_CIRCUIT_SECONDS": IDLE,
    }
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    yield options, client
    client.close()


def keys(client, prefix, name):
    """The state keys of a circuit; its history (h10, h60, totals) expires by itself."""
    found = client.keys(f"{prefix}:v1:{{{name}}}:*")
    return [key for key in found if not any(k in key for k in (":h10:", ":h60:", ":totals"))]


def test_redis_keys_of_idle_hosts_are_deleted_but_not_those_used_elsewhere(
    many_hosts, clock, shared
):
    options, client = shared
    a, b, c = many_hosts.urls(3)
    get(a), get(b)
    get_backend().flush()  # the deferred successes: what another process would see
    assert keys(client, options["prefix"], host(a)) and keys(client, options["prefix"], host(b))
    # Another process keeps using b: its calls are recorded in the shared state.
    other = RedisBackend(clock=clock, url=options["url"], prefix=options["prefix"])
    clock.advance(IDLE - 30)
    ticket = other.acquire(host(b), Policy())
    other.record(ticket, Policy(), True, 1)
    other.flush()
    other.close()
    clock.advance(60)
    get(c)  # a new host: this process looks for idle ones
    assert keys(client, options["prefix"], host(a)) == []
    assert keys(client, options["prefix"], host(b))  # used 30 s ago elsewhere: kept
    assert circuits.hosts == {host(b), host(c)}


def test_drain_retires_keys_no_running_process_remembers(many_hosts, clock, shared):
    options, client = shared
    a = many_hosts.urls(1)[0]
    get(a)
    get_backend().flush()
    registry.refresh()  # the rows of the circuits first used here
    circuits.clear()  # as after a restart: no process knows the host any more
    clock.advance(IDLE + 60)
    assert keys(client, options["prefix"], host(a))
    events.drain()
    assert keys(client, options["prefix"], host(a)) == []
    assert host(a) not in client.hgetall(f"{options['prefix']}:v1:not-closed")
