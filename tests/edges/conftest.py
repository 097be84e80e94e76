"""A real HTTP upstream on loopback whose answers each test scripts, and edge-layer fixtures."""

import logging
import logging.config
import socket
import threading
from collections import deque

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

HANG = object()  # no answer at all
HANG_BODY = object()  # headers and a first chunk, then nothing


class Upstream:
    """A threaded HTTP server: ``answer(503, 200, (429, {"Retry-After": "2"}), HANG)`` queues the
    next responses (then 200 forever); ``HANG``/``HANG_BODY`` hold the request until the test
    ends."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.script: deque = deque()
        self.seen: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.server.expect_request("").respond_with_handler(self._handle)

    def url(self, path: str = "/") -> str:
        return self.server.url_for(path)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def answer(self, *steps) -> None:
        self.script.extend(steps)

    def _handle(self, request: Request) -> Response:
        self.seen.append((request.method, request.path))
        step = self.script.popleft() if self.script else 200
        if step is HANG:
            self.release.wait(30)
            return Response("too late", 200)
        if step is HANG_BODY:
            return Response(self._stalled_body(self.release), 200, direct_passthrough=True)
        status, headers = step if isinstance(step, tuple) else (step, {})
        return Response(f"status {status}", status, headers)

    @staticmethod
    def _stalled_body(release):
        yield b"first chunk "
        release.wait(30)
        yield b"too late"

    def reset(self) -> None:
        self.release.set()  # let a hanging request finish before the next test
        self.release = threading.Event()
        self.script.clear()
        self.seen.clear()


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
def dead_url():
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def breaker_db(transactional_db, memory_backend):
    """Policies in a real database; events (written by a background thread, on its own
    connection, hence a transactional test) are flushed before the tables are emptied."""
    from resilience import events

    yield memory_backend
    assert events.flush(timeout=10)


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


class DefaultLogging:
    """Django's default ``LOGGING`` is in force: what reached ``django.request`` at ERROR."""

    def __init__(self, caplog) -> None:
        self.caplog = caplog

    def request_errors(self) -> list[logging.LogRecord]:
        return [
            r
            for r in self.caplog.records
            if r.name == "django.request" and r.levelno >= logging.ERROR
        ]


@pytest.fixture
def default_logging(settings, caplog, mailoutbox):
    """Django's default LOGGING (``mail_admins`` on ``django``), DEBUG off and ADMINS set: a
    record at ERROR on ``django.request`` is an e-mail to the admins (in ``mailoutbox``)."""
    from django.utils.log import DEFAULT_LOGGING, AdminEmailHandler

    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.DEBUG = False
    django_logger = logging.getLogger("django")
    saved = django_logger.handlers[:], django_logger.level, django_logger.propagate
    logging.config.dictConfig(DEFAULT_LOGGING)
    assert any(isinstance(h, AdminEmailHandler) for h in django_logger.handlers)
    caplog.set_level(logging.DEBUG)
    yield DefaultLogging(caplog)
    django_logger.handlers[:], django_logger.level, django_logger.propagate = saved
