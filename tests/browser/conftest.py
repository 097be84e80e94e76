"""Browser-test fixtures: Debian's Chromium via Playwright, a private Redis, another process."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RESILIENCE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REFRESH_SECONDS = 0.2


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
        # between browser steps are ordinary synchronous code.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()


@pytest.fixture
def new_page(django_db_setup, browser, live_server):
    """``new_page()``: a page in a fresh browser context (its own cookies) on the live server;
    keyword arguments go to Playwright's ``new_context`` (``java_script_enabled=False``)."""
    # Set up before the (session-wide) live server: created earlier, it would see the ":memory:"
    # name of the SQLite settings and share the test thread's connection with its threads.
    assert not live_server.thread.connections_override
    contexts = []

    def make(**options):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1360, "height": 900}, **options
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shared_settings(redis_server, settings):
    """RESILIENCE on the private Redis, for the live server here and for other processes."""
    value = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {
            "url": redis_server.url,
            "prefix": f"browser{uuid.uuid4().hex[:8]}",
            # A loaded CI machine must not push a process into its degraded, local-state mode.
            "socket_timeout": 2.0,
        },
        "POLICY_REFRESH_SECONDS": REFRESH_SECONDS,
    }
    settings.RESILIENCE = value
    return value


class OtherProcess:
    """``tests/browser/worker.py`` in a subprocess on the same database and Redis."""

    def __init__(self, env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "tests.browser.worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        assert "ready" in self._read(60)

    def ask(self, command: str, timeout: float = 15) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def wait_for(self, command: str, predicate, timeout: float = 10) -> dict:
        """Repeat ``command`` until ``predicate(answer)``; the answer, or an AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.ask(command)
            if predicate(answer):
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} still answers {answer} after {timeout}s")
            time.sleep(REFRESH_SECONDS / 4)

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"the other process did not answer:\n{self.stderr()}")
        return json.loads(line)

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def other_process(shared_settings, transactional_db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SETTINGS": json.dumps(shared_settings),
        "RESILIENCE_TEST_CIRCUIT": "demo-upstream",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    worker = OtherProcess(env)
    yield worker
    worker.stop()
