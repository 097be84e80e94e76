"""CircuitBreakerTransport / AsyncCircuitBreakerTransport against a real local HTTP server."""

import asyncio
import time

import httpx
import pytest

from resilience import CircuitOpenError, breaker
from resilience.contrib.httpx import AsyncCircuitBreakerTransport, CircuitBreakerTransport
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory
from tests.http.helpers import HANG

pytestmark = pytest.mark.usefixtures("breaker_db")


def client(**options):
    return httpx.Client(transport=CircuitBreakerTransport(**options), timeout=5)


async def async_policy(**fields):
    """Create the row and warm the registry from a thread (the ORM does not run in the loop)."""

    def create():
        BreakerPolicyFactory(**fields)
        registry.get(fields["name"])

    await asyncio.to_thread(create)


def async_client(**options):
    return httpx.AsyncClient(transport=AsyncCircuitBreakerTransport(**options), timeout=5)


class TestSync:
    def test_5xx_counts_and_is_returned_then_the_circuit_rejects(self, upstream, outcomes):
        BreakerPolicyFactory(name="search", failure_threshold=2, recovery_timeout=30)
        upstream.answer(500, 503, 200)
        with client(circuit="search") as c:
            first = c.get(upstream.url())
            assert first.status_code == 500 and first.text == "status 500"
            assert c.get(upstream.url()).status_code == 503
            with pytest.raises(CircuitOpenError) as info:
                c.get(upstream.url())
        assert len(upstream.seen) == 2
        assert 29 <= info.value.retry_after <= 30
        assert outcomes("search") == {"success": 0, "failure": 2, "rejected": 1, "ignored": 0}

    def test_4xx_does_not_count_unless_configured(self, upstream, outcomes):
        BreakerPolicyFactory(name="search", failure_threshold=1)
        upstream.answer(404, 422, 418)
        with client(circuit="search") as c:
            assert c.get(upstream.url()).status_code == 404
            assert c.get(upstream.url()).status_code == 422
        assert breaker("search").state == "closed"
        with client(circuit="search", failure_statuses={418}) as c:
            assert c.get(upstream.url()).status_code == 418
        assert breaker("search").state == "open"

    def test_connection_errors_and_timeouts_count(self, upstream, dead_url, outcomes):
        BreakerPolicyFactory(name="search", failure_threshold=2)
        upstream.answer(HANG)
        with client(circuit="search") as c:
            with pytest.raises(httpx.ConnectError):
                c.get(dead_url)
            with pytest.raises(httpx.ReadTimeout):
                c.get(upstream.url(), timeout=0.3)
            with pytest.raises(CircuitOpenError):
                c.get(upstream.url())
        assert outcomes("search")["failure"] == 2

    def test_one_circuit_per_host(self, upstream):
        BreakerPolicyFactory(name=f"http:{upstream.host}", failure_threshold=1)
        upstream.answer(502)
        with client() as c:
            assert c.get(upstream.url()).status_code == 502
        assert breaker(f"http:{upstream.host}").state == "open"

    def test_per_host_circuits_stop_at_max_hosts(self, upstream, dead_url, caplog):
        from resilience.models import BreakerPolicy

        with client(max_hosts=1) as c:
            assert c.get(upstream.url()).status_code == 200
            with pytest.raises(httpx.ConnectError):
                c.get(dead_url)  # a second host: sent, but without a circuit
        registry.refresh()  # what the background thread does: rows for the circuits first used
        names = list(BreakerPolicy.objects.values_list("name", flat=True))
        assert names == [f"http:{upstream.host}"]
        assert "max_hosts" in caplog.text

    def test_max_hosts_holds_per_process_for_a_client_per_request(self, many_hosts, caplog):
        from resilience.models import BreakerPolicy

        for url in many_hosts.urls(60):
            with client(max_hosts=5) as c:
                assert c.get(url).text == "ok"
        registry.refresh()
        assert BreakerPolicy.objects.count() == 5
        assert caplog.text.count("max_hosts") == 1

    def test_one_circuit_for_every_spelling_of_an_address(self, upstream, outcomes, caplog):
        port = upstream.server.port
        with client(max_hosts=1) as c:
            for host in ("127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1"):
                assert c.get(f"http://{host}:{port}/").status_code == 200
        assert outcomes(f"http:127.0.0.1:{port}")["success"] == 4
        assert "max_hosts" not in caplog.text

    def test_streaming_a_good_response(self, upstream):
        BreakerPolicyFactory(name="search")
        with client(circuit="search") as c, c.stream("GET", upstream.url()) as response:
            assert b"".join(response.iter_bytes()) == b"status 200"

    def test_retries_with_retry_after(self, upstream, monkeypatch, outcomes):
        sleeps = []
        monkeypatch.setattr(time, "sleep", sleeps.append)
        BreakerPolicyFactory(name="search", retry_attempts=2, retry_max_backoff_ms=10_000)
        upstream.answer((503, {"Retry-After": "4"}), 500)
        with client(circuit="search") as c:
            assert c.get(upstream.url()).status_code == 200
        assert len(upstream.seen) == 3
        assert sleeps[0] == 4.0
        assert outcomes("search")["success"] == 1

    def test_retry_after_is_reported_in_the_rejection(self, upstream):
        BreakerPolicyFactory(name="search", failure_threshold=1, recovery_timeout=1)
        upstream.answer((503, {"Retry-After": "600"}))
        with client(circuit="search") as c:
            c.get(upstream.url())
            with pytest.raises(CircuitOpenError) as info:
                c.get(upstream.url())
        assert 599 <= info.value.retry_after <= 600

    def test_wraps_a_given_transport(self, upstream):
        BreakerPolicyFactory(name="search", failure_threshold=1)
        seen = []

        def handler(request):
            seen.append(str(request.url))
            return httpx.Response(503, text="mock down")

        with client(circuit="search", transport=httpx.MockTransport(handler)) as c:
            assert c.get("http://upstream.test/").text == "mock down"
        assert seen == ["http://upstream.test/"]
        assert breaker("search").state == "open"


class TestAsync:
    async def test_max_hosts_holds_per_process_for_a_client_per_request(self, many_hosts, caplog):
        from resilience.models import BreakerPolicy

        for url in many_hosts.urls(30):
            async with async_client(max_hosts=3) as c:
                assert (await c.get(url)).text == "ok"

        def stored():
            registry.refresh()
            return BreakerPolicy.objects.count()

        assert await asyncio.to_thread(stored) == 3
        assert caplog.text.count("max_hosts") == 1

    async def test_5xx_counts_and_is_returned_then_the_circuit_rejects(self, upstream, outcomes):
        await async_policy(name="search", failure_threshold=2, recovery_timeout=30)
        upstream.answer(502, 500)
        async with async_client(circuit="search") as c:
            assert (await c.get(upstream.url())).status_code == 502
            response = await c.get(upstream.url())
            assert response.status_code == 500 and response.text == "status 500"
            with pytest.raises(CircuitOpenError):
                await c.get(upstream.url())
        assert len(upstream.seen) == 2
        assert outcomes("search")["failure"] == 2

    async def test_timeouts_and_connection_errors_count(self, upstream, dead_url, outcomes):
        await async_policy(name="search", failure_threshold=5)
        upstream.answer(HANG)
        async with async_client(circuit="search") as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.get(upstream.url(), timeout=0.3)
            with pytest.raises(httpx.ConnectError):
                await c.get(dead_url)
            assert (await c.get(upstream.url())).status_code == 200
        assert outcomes("search") == {"success": 1, "failure": 2, "rejected": 0, "ignored": 0}

    async def test_retries_do_not_block_and_post_is_not_repeated(self, upstream, outcomes):
        await async_policy(name="search", retry_attempts=2, retry_backoff_ms=1)
        upstream.answer(503, 503)
        async with async_client(circuit="search") as c:
            assert (await c.get(upstream.url())).status_code == 200
            upstream.answer(503)
            assert (await c.post(upstream.url(), content=b"x")).status_code == 503
        assert [method for method, _ in upstream.seen] == ["GET", "GET", "GET", "POST"]

    async def test_one_circuit_per_host(self, upstream):
        name = f"http:{upstream.host}"
        await async_policy(name=name, failure_threshold=1)
        upstream.answer(500)
        async with async_client() as c:
            await c.get(upstream.url())
            with pytest.raises(CircuitOpenError) as info:
                await c.get(upstream.url())
        assert info.value.circuit == name


def test_the_cap_is_shared_by_every_adapter_and_transport(many_hosts, caplog):
    """requests, httpx and async httpx draw on one per-process count of per-host circuits."""
    import requests

    from resilience.contrib.requests import CircuitBreakerAdapter
    from resilience.models import BreakerPolicy

    first, second, third = many_hosts.urls(3)
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter(max_hosts=2))
    assert session.get(first, timeout=5).text == "ok"
    with client(max_hosts=2) as c:
        assert c.get(second).text == "ok"

    async def third_host():
        async with async_client(max_hosts=2) as c:
            return (await c.get(third)).text

    assert asyncio.run(third_host()) == "ok"  # sent, without a circuit
    registry.refresh()
    names = set(BreakerPolicy.objects.values_list("name", flat=True))
    assert names == {f"http:{host}:{many_hosts.port}" for host in many_hosts.addresses[:2]}
    assert caplog.text.count("max_hosts") == 1
