"""Fixtures shared by the whole suite."""

import itertools
import logging
import logging.config
import os
import socket

import pytest
import redis as redis_py

from resilience.clock import ManualClock
from tests.alerts.helpers import RECIPIENT
from tests.support.celeryworker import make_default
from tests.support.redisproc import REDIS_SERVER, RedisProcess
from tests.support.smtp import SMTPServer

# Shared tasks resolve to the suite's eager app in every thread, never Celery's fallback app
# (which would connect to amqp://localhost).
make_default()


@pytest.fixture
def clock():
    """A manual clock: tests advance time instead of sleeping."""
    return ManualClock(start_ms=1_700_000_000_000)


@pytest.fixture(autouse=True)
def _isolated_resilience():
    """Each test starts with a fresh backend and policy cache; no background refresh thread."""
    from resilience.backends import reset_backend
    from resilience.policies import registry

    registry.background = False
    registry.clear()
    reset_backend()
    yield
    registry.clear()
    reset_backend()


@pytest.fixture(autouse=True)
def _no_leftover_events(request):
    """Events a test emitted are written during that test (or dropped), never into the next.

    The writer thread stores events on its own database connection. A test that runs inside a
    transaction (``django_db`` without ``transaction=True``, or ``db``) holds SQLite's write
    lock until it rolls back, so what it emitted would be stored after the rollback: committed
    rows, and alerts, in the tests that follow. Such a test fails here; mark it
    ``django_db(transaction=True)``.
    """
    from resilience import events

    yield
    marker = request.node.get_closest_marker("django_db")
    names = request.fixturenames
    transactional = (marker is not None and marker.kwargs.get("transaction", False)) or any(
        name in names for name in ("transactional_db", "live_server")
    )
    if not (transactional or marker is not None or "db" in names):
        events.discard()  # no database: nothing can be written anyway
        return
    written = events.flush(timeout=2)
    events.discard(timeout=10 if transactional else 0)
    if not (written or transactional):
        pytest.fail(
            "this test emitted events inside its transaction: the writer thread could store "
            "them only after the rollback, into the next tests; use "
            "@pytest.mark.django_db(transaction=True)",
            pytrace=False,
        )


@pytest.fixture
def memory_backend(clock, settings):
    """The memory backend on the manual clock (``clock.advance(s)`` moves circuit time);
    untraced like tests.settings (tests/observability/test_otel.py turns TRACING on)."""
    from resilience.backends import get_backend

    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.memory.MemoryBackend",
        "OPTIONS": {"clock": clock},
        "TRACING": False,
    }
    return get_backend()


@pytest.fixture
def breaker_db(transactional_db, memory_backend):
    """Policies in a real database; events (written by a background thread, on its own
    connection, hence a transactional test) are flushed before the tables are emptied."""
    from resilience import events

    yield memory_backend
    assert events.flush(timeout=10)


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


# --- Redis: private servers only (never the system one on 6379) ---------------------------------


def _require_redis_server():
    if not REDIS_SERVER:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/test.sh installs it)")
        pytest.skip("redis-server is not installed")


_db_numbers = itertools.cycle(range(1, 64))


def _flushdb(host: str, port: int, db: int) -> None:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
        assert data == b"+OK\r\n+OK\r\n", data


@pytest.fixture(scope="session")
def redis_server():
    """One private redis-server for the session; tests that break Redis use ``redis_proc``."""
    _require_redis_server()
    with RedisProcess() as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    """A URL to an emptied database of the session server, different for consecutive tests."""
    if not redis_server.running:  # a test misbehaved: keep the rest of the session usable
        redis_server.start()
    redis_server.resume()
    db = next(_db_numbers)
    _flushdb(redis_server.host, redis_server.port, db)
    return redis_server.url_for_db(db)


@pytest.fixture
def redis_proc():
    """A redis-server of this test's own, free to be stopped, paused and flushed."""
    _require_redis_server()
    with RedisProcess() as server:
        yield server


@pytest.fixture
def admin_redis(redis_proc):
    """A direct client to ``redis_proc`` (not through a fault proxy), for SCRIPT FLUSH, DEL, ..."""
    client = redis_py.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
    yield client
    client.close()


# --- E-mail: a private SMTP server, alerts sent from this process -------------------------------


@pytest.fixture(scope="session")
def smtp_server():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server, settings):
    """The SMTP server, emptied, as this process's e-mail backend (worker processes mail there
    through tests.support.procsettings, see outages/reconcile.py's ``smtp_env``)."""
    smtp_server.clear()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "resilience@example.com"
    yield smtp_server
    smtp_server.release()


@pytest.fixture
def sync_alerts(memory_backend, settings, smtp):
    """Memory backend on the manual clock; alerts sent from this process's background thread."""
    from resilience import events
    from resilience.backends import get_backend

    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "ALERTS": {"DELIVERY": "sync", "RECIPIENTS": [RECIPIENT],
                   "SITE_URL": "https://ops.example.com"},
    }  # fmt: skip
    yield get_backend()  # rebuilt for the new settings, on the same manual clock
    events.flush(timeout=10)
    events.discard()
