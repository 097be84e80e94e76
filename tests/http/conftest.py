"""Fixtures of the HTTP tests: the scripted upstream (helpers.Upstream), many hosts, a dead URL,
per-test outcome counts, and no per-host circuits carried from one test to the next."""

import socket

import pytest

from tests.http.helpers import Upstream


@pytest.fixture(scope="session")
def _upstream_server():
    server = Upstream()
    server.server.start()
    yield server
    server.release.set()
    server.server.stop()


@pytest.fixture
def upstream(_upstream_server):
    _upstream_server.reset()
    yield _upstream_server
    _upstream_server.reset()


@pytest.fixture(scope="session")
def many_hosts():
    """300 distinct hosts (127.0.0.2 and up, one port) answering ``200 ok``."""
    from tests.support.manyhosts import ManyHosts

    server = ManyHosts(300).start()
    yield server
    server.stop()


@pytest.fixture
def middleware(settings):
    """``CircuitBreakerMiddleware`` installed last in ``MIDDLEWARE``."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "resilience.middleware.CircuitBreakerMiddleware"]


@pytest.fixture
def dead_url():
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def _forget_http_circuits():
    """Each test starts with no per-host circuits counted and no Retry-After remembered."""
    from resilience.contrib._http import circuits, hints

    hints.clear()
    circuits.clear()
    yield
    hints.clear()
    circuits.clear()


@pytest.fixture
def outcomes():
    """``outcomes(circuit)``: this test's per-process call counts (``resilience.stats`` deltas):
    success, failure, rejected and ignored always, the bulkhead and deadline ones when not 0."""
    from resilience import stats

    before = stats.snapshot()

    def delta(circuit):
        now = stats.snapshot().get(circuit, dict.fromkeys(stats.OUTCOMES, 0))
        old = before.get(circuit, {})
        counts = {outcome: count - old.get(outcome, 0) for outcome, count in now.items()}
        always = stats.OUTCOMES[:4]
        return {outcome: n for outcome, n in counts.items() if n or outcome in always}

    return delta
