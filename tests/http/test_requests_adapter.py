"""CircuitBreakerAdapter on a real requests.Session against a real local HTTP server."""

import pickle
import time
from collections import Counter

import pytest
import requests

from resilience import CircuitOpenError, breaker
from resilience.contrib.requests import CircuitBreakerAdapter
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory
from tests.http.helpers import HANG, HANG_BODY

pytestmark = pytest.mark.usefixtures("breaker_db")


def session(**options):
    s = requests.Session()
    s.mount("http://", CircuitBreakerAdapter(**options))
    return s


def test_success_is_counted_and_returned(upstream, outcomes):
    BreakerPolicyFactory(name="api")
    response = session(circuit="api").get(upstream.url("/ok"), timeout=5)
    assert response.status_code == 200 and response.text == "status 200"
    assert outcomes("api")["success"] == 1


def test_5xx_counts_opens_the_circuit_and_is_still_returned(upstream, outcomes):
    BreakerPolicyFactory(name="api", failure_threshold=3, recovery_timeout=30)
    upstream.answer(500, 502, 503)
    s = session(circuit="api")
    statuses = [s.get(upstream.url(), timeout=5) for _ in range(3)]
    assert [r.status_code for r in statuses] == [500, 502, 503]
    assert statuses[0].text == "status 500"  # the body was read and is still available
    assert breaker("api").state == "open"
    with pytest.raises(CircuitOpenError) as info:
        s.get(upstream.url(), timeout=5)
    assert len(upstream.seen) == 3  # rejected without a request
    assert 29 <= info.value.retry_after <= 30
    assert outcomes("api") == {"success": 0, "failure": 3, "rejected": 1, "ignored": 0}


def test_4xx_does_not_count(upstream, outcomes):
    BreakerPolicyFactory(name="api", failure_threshold=2)
    upstream.answer(404, 400, 403, 409)
    s = session(circuit="api")
    assert [s.get(upstream.url(), timeout=5).status_code for _ in range(4)] == [404, 400, 403, 409]
    assert breaker("api").state == "closed"
    assert outcomes("api")["failure"] == 0


def test_failure_statuses_are_configurable(upstream, outcomes):
    BreakerPolicyFactory(name="api", failure_threshold=2)
    upstream.answer(500, 500, 404, 404)
    s = session(circuit="api", failure_statuses={404})
    for _ in range(4):
        s.get(upstream.url(), timeout=5)
    assert outcomes("api")["failure"] == 2
    assert breaker("api").state == "open"


def test_connection_errors_count(dead_url):
    BreakerPolicyFactory(name="api", failure_threshold=2)
    s = session(circuit="api")
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            s.get(dead_url, timeout=5)
    with pytest.raises(CircuitOpenError):
        s.get(dead_url, timeout=5)


def test_timeouts_count(upstream):
    BreakerPolicyFactory(name="api", failure_threshold=1)
    upstream.answer(HANG)
    s = session(circuit="api")
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        s.get(upstream.url(), timeout=0.3)
    assert time.monotonic() - started < 5
    assert breaker("api").state == "open"


def test_a_body_that_stalls_counts_unless_streamed(upstream):
    BreakerPolicyFactory(name="api", failure_threshold=1)
    upstream.answer(HANG_BODY, HANG_BODY)
    with session(circuit="api").get(upstream.url(), timeout=0.3, stream=True) as response:
        assert response.status_code == 200  # the caller reads (and times out) on its own
    assert breaker("api").state == "closed"
    with pytest.raises(requests.ConnectionError):
        session(circuit="api").get(upstream.url(), timeout=0.3)
    assert breaker("api").state == "open"


def test_client_side_errors_are_not_the_upstreams_fault(upstream):
    BreakerPolicyFactory(name="api", failure_threshold=1)
    s = session(circuit="api")
    with pytest.raises(requests.exceptions.InvalidURL):
        s.get("http://[bad", timeout=5)
    assert breaker("api").state == "closed"


def test_one_circuit_per_host(upstream, dead_url, outcomes):
    BreakerPolicyFactory(name=f"http:{upstream.host}", failure_threshold=1)
    s = session()
    upstream.answer(500)
    assert s.get(upstream.url(), timeout=5).status_code == 500
    assert breaker(f"http:{upstream.host}").state == "open"
    dead_host = dead_url.split("/")[2]
    with pytest.raises(requests.ConnectionError):
        s.get(dead_url, timeout=5)  # another host: its own circuit, still closed
    assert outcomes(f"http:{dead_host}")["failure"] == 1


def test_retry_after_is_reported_in_the_rejection(upstream):
    BreakerPolicyFactory(name="api", failure_threshold=1, recovery_timeout=5)
    upstream.answer((503, {"Retry-After": "120"}))
    s = session(circuit="api")
    assert s.get(upstream.url(), timeout=5).status_code == 503
    with pytest.raises(CircuitOpenError) as info:
        s.get(upstream.url(), timeout=5)
    assert 119 <= info.value.retry_after <= 120


def test_429_is_neither_success_nor_failure(upstream, outcomes):
    BreakerPolicyFactory(name="api", failure_threshold=1)
    upstream.answer(429, 429)
    s = session(circuit="api")
    assert s.get(upstream.url(), timeout=5).status_code == 429
    assert s.get(upstream.url(), timeout=5).status_code == 429
    assert breaker("api").state == "closed"
    assert outcomes("api")["ignored"] == 2


def test_streamed_responses_pass_through(upstream):
    BreakerPolicyFactory(name="api")
    with session(circuit="api").get(upstream.url(), timeout=5, stream=True) as response:
        assert b"".join(response.iter_content(4)) == b"status 200"


def test_invalid_circuit_name_is_rejected_early():
    with pytest.raises(ValueError, match="invalid circuit name"):
        CircuitBreakerAdapter("not valid!")


def test_adapter_kwargs_reach_httpadapter():
    adapter = CircuitBreakerAdapter("api", pool_maxsize=3, max_retries=0)
    assert adapter._pool_maxsize == 3


class TestRetries:
    @pytest.fixture(autouse=True)
    def _no_real_sleep(self, monkeypatch):
        self.sleeps = []
        monkeypatch.setattr(time, "sleep", self.sleeps.append)

    def test_transient_failures_are_retried_inside_the_breaker(self, upstream, outcomes):
        BreakerPolicyFactory(name="api", failure_threshold=2, retry_attempts=2)
        upstream.answer(503, 502)
        response = session(circuit="api").get(upstream.url(), timeout=5)
        assert response.status_code == 200
        assert len(upstream.seen) == 3
        assert outcomes("api") == {"success": 1, "failure": 0, "rejected": 0, "ignored": 0}

    def test_exhausted_retries_are_one_failure_returning_the_last_response(
        self, upstream, outcomes
    ):
        BreakerPolicyFactory(name="api", failure_threshold=2, retry_attempts=1)
        upstream.answer(500, 503)
        response = session(circuit="api").get(upstream.url(), timeout=5)
        assert response.status_code == 503
        assert outcomes("api")["failure"] == 1
        assert breaker("api").state == "closed"

    def test_retry_after_is_respected(self, upstream):
        BreakerPolicyFactory(
            name="api", retry_attempts=1, retry_backoff_ms=1, retry_max_backoff_ms=5000
        )
        upstream.answer((429, {"Retry-After": "3"}))
        assert session(circuit="api").get(upstream.url(), timeout=5).status_code == 200
        assert self.sleeps == [3.0]

    def test_post_is_not_repeated(self, upstream):
        BreakerPolicyFactory(name="api", retry_attempts=3)
        upstream.answer(503)
        assert session(circuit="api").post(upstream.url(), data=b"x", timeout=5).status_code == 503
        assert upstream.seen == [("POST", "/")]

    def test_connection_errors_are_retried(self, dead_url, outcomes):
        BreakerPolicyFactory(name="api", failure_threshold=5, retry_attempts=2)
        with pytest.raises(requests.ConnectionError):
            session(circuit="api").get(dead_url, timeout=5)
        assert len(self.sleeps) == 2
        assert outcomes("api")["failure"] == 1


def test_sessions_with_the_adapter_still_pickle(upstream):
    BreakerPolicyFactory(name="api", failure_threshold=1)
    s = session(circuit="api", failure_statuses={502})
    s.get(upstream.url(), timeout=5)
    copy = pickle.loads(pickle.dumps(s))
    adapter = copy.get_adapter(upstream.url())
    assert (adapter.circuit, adapter.failure_statuses) == ("api", frozenset({502}))
    upstream.answer(502)
    assert copy.get(upstream.url(), timeout=5).status_code == 502
    assert breaker("api").state == "open"


def test_per_host_circuits_stop_at_max_hosts(upstream, dead_url, outcomes, caplog):
    """Past ``max_hosts``, a new host gets no circuit and no policy row (hostile URLs cannot
    fill the table); its requests still work, unprotected, and it is logged once."""
    from resilience.models import BreakerPolicy

    s = session(max_hosts=1)
    assert s.get(upstream.url(), timeout=5).status_code == 200
    other = upstream.url().replace("127.0.0.1", "localhost")  # the same server, another host
    upstream.answer(500)
    response = s.get(other, timeout=5)
    assert response.status_code == 500 and response.text == "status 500"  # returned as is
    with pytest.raises(requests.ConnectionError):
        s.get(dead_url, timeout=5)
    registry.refresh()  # what the background thread does: rows for the circuits first used
    assert list(BreakerPolicy.objects.values_list("name", flat=True)) == [f"http:{upstream.host}"]
    assert outcomes(f"http:{upstream.host}")["success"] == 1
    assert caplog.text.count("max_hosts") == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, None])
def test_max_hosts_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="max_hosts"):
        CircuitBreakerAdapter(max_hosts=bad)


def test_max_hosts_holds_per_process_for_a_session_per_request(many_hosts, caplog):
    """A new Session (so a new adapter) per request, as much code does, to 300 hosts: the
    process makes at most ``max_hosts`` per-host circuits, policy rows and metrics series, not
    ``max_hosts`` per adapter."""
    from prometheus_client.parser import text_string_to_metric_families

    from resilience.models import BreakerPolicy
    from resilience.prometheus import exposition

    for url in many_hosts.urls(300):
        assert session(max_hosts=20).get(url, timeout=5).text == "ok"
    registry.refresh()  # what the background thread does: rows for the circuits first used
    assert BreakerPolicy.objects.count() == 20
    assert caplog.text.count("max_hosts") == 1
    body, _ = exposition()
    series = [
        sample.labels["circuit"]
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.labels.get("circuit", "").endswith(f":{many_hosts.port}")
    ]
    per_circuit = Counter(series)
    assert len(per_circuit) == 20
    # As many series for each circuit (state, counters, the cluster histogram's buckets...).
    assert len(set(per_circuit.values())) == 1


def test_one_circuit_for_every_spelling_of_an_address(upstream, outcomes, caplog):
    """``127.1``, ``2130706433`` or ``0x7f.0.0.1`` reach 127.0.0.1 (the resolver reads them as
    inet_aton does): one circuit, not one per spelling."""
    port = upstream.server.port
    s = session(max_hosts=1)
    spellings = ("127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "0X7F.1")
    for host in spellings:
        assert s.get(f"http://{host}:{port}/", timeout=5).status_code == 200
    assert outcomes(f"http:127.0.0.1:{port}")["success"] == len(spellings)
    assert "max_hosts" not in caplog.text
