"""call_timeout_ms in the HTTP adapters: a real upstream that hangs, the smaller timeout wins."""

import asyncio
import socket
import threading
import time

import httpx
import pytest
import requests

from resilience import breaker
from resilience.contrib.httpx import AsyncCircuitBreakerTransport, CircuitBreakerTransport
from resilience.contrib.requests import CircuitBreakerAdapter
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


@pytest.fixture
def hanging_url():
    """A real HTTP server that accepts connections and reads requests, and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    held = []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(65536)
            held.append(conn)  # kept open, unanswered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def one_failure(name):
    snap = breaker(name).snapshot()
    return (snap["consecutive_failures"], snap["in_flight"])


def test_requests_gets_the_policy_timeout_when_the_caller_waits_longer(hanging_url):
    BreakerPolicyFactory(name="hang-req", call_timeout_ms=300, failure_threshold=5)
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter("hang-req"))
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout, match=r"read timeout=0\.3\)"):
        session.get(hanging_url, timeout=30)
    assert time.monotonic() - started < 3
    assert one_failure("hang-req") == (1, 0)


def test_requests_without_any_timeout_is_bounded_too(hanging_url):
    BreakerPolicyFactory(name="hang-req2", call_timeout_ms=200)
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter("hang-req2"))
    with pytest.raises(requests.ReadTimeout, match=r"read timeout=0\.2\)"):
        session.get(hanging_url)  # requests' default: wait forever


def test_requests_keeps_the_callers_smaller_timeout(hanging_url):
    BreakerPolicyFactory(name="hang-req3", call_timeout_ms=5000)
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter("hang-req3"))
    with pytest.raises(requests.ReadTimeout, match=r"read timeout=0\.1\)"):
        session.get(hanging_url, timeout=(5, 0.1))
    assert one_failure("hang-req3") == (1, 0)


def test_httpx_sync_transport(hanging_url):
    BreakerPolicyFactory(name="hang-hx", call_timeout_ms=300)
    with httpx.Client(transport=CircuitBreakerTransport("hang-hx")) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as info:
            client.get(hanging_url, timeout=30)
        assert time.monotonic() - started < 3
        assert info.value.request.extensions["timeout"]["read"] == 0.3
        with pytest.raises(httpx.ReadTimeout) as info:
            client.get(hanging_url, timeout=0.1)  # the caller's smaller one wins
        assert info.value.request.extensions["timeout"]["read"] == 0.1
    assert one_failure("hang-hx") == (2, 0)


def test_httpx_async_transport(hanging_url):
    BreakerPolicyFactory(name="hang-ahx", call_timeout_ms=300)
    breaker("hang-ahx").snapshot()  # the policy is read outside the event loop

    async def main():
        transport = AsyncCircuitBreakerTransport("hang-ahx")
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ReadTimeout) as info:
                await client.get(hanging_url, timeout=None)
            return info.value.request.extensions["timeout"]

    started = time.monotonic()
    timeouts = asyncio.run(main())
    assert time.monotonic() - started < 3
    assert timeouts == {"connect": 0.3, "read": 0.3, "write": 0.3, "pool": 0.3}
    assert one_failure("hang-ahx") == (1, 0)


def test_requests_accepts_a_urllib3_timeout_object_with_a_policy_timeout(hanging_url):
    """requests takes a ``urllib3.Timeout`` as ``timeout=``; with call_timeout_ms set the
    adapter must still bound it (it raised TypeError comparing a Timeout with a float)."""
    from urllib3.util import Timeout

    BreakerPolicyFactory(name="hang-req-obj", call_timeout_ms=300, failure_threshold=5)
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter("hang-req-obj"))
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(hanging_url, timeout=Timeout(connect=30, read=30))
    assert time.monotonic() - started < 2
    assert one_failure("hang-req-obj") == (1, 0)
