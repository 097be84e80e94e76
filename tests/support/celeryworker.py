"""The test suite's Celery app, and a real ``celery worker`` subprocess on a private broker.

Imported by the test process, ``app`` reads ``CELERY_*`` from ``tests.settings`` (eager, in-memory
broker: nothing ever reaches a system broker); ``celery -A tests.support.celeryworker worker``
with ``tests.support.procsettings`` runs a real worker against the broker in its environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from celery import Celery, _state

app = Celery("resilience-tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("resilience.tasks", "tests.support.celerytasks")

ROOT = Path(__file__).resolve().parents[2]


def make_default() -> None:
    """Make ``app`` the app of every thread (shared tasks resolve to it)."""
    app.set_default()


@contextlib.contextmanager
def broker_client(url: str, **transport_options: float) -> Iterator[Celery]:
    """Within the block, this process publishes tasks to the real broker at ``url``: from
    every thread (the default app) and from this one (its current app, which otherwise is the
    eager test app: ``events.drain()`` here would run the task in this process)."""
    client = Celery("resilience-tests-client", set_as_current=False)
    client.conf.update(
        broker_url=url,
        task_always_eager=False,
        broker_connection_retry_on_startup=False,
        broker_transport_options=transport_options,
    )
    previous, previous_current = _state.default_app, _state.get_current_app()
    client.set_default()
    client.set_current()
    try:
        yield client
    finally:
        previous_current.set_current()
        if previous is not None:
            previous.set_default()
        client.close()


class CeleryWorker:
    """``celery worker`` (prefork, 2 processes) in its own session, so it can be killed whole."""

    def __init__(self, broker_url: str, env: dict[str, str]) -> None:
        self.broker_url = broker_url
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="resilience-worker-", suffix=".log")[1])

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        env = {
            **os.environ,
            **self.env,
            "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
            "RESILIENCE_TEST_BROKER_URL": self.broker_url,
            "PYTHONPATH": str(ROOT),
        }
        args = [
            sys.executable, "-m", "celery", "-A", "tests.support.celeryworker", "worker",
            "--pool=prefork", "--concurrency=2", "--loglevel=INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-n", f"resilience-test-{os.getpid()}@%h",
        ]  # fmt: skip
        offset = self.log.stat().st_size
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{self.output()[-4000:]}")
            if " ready." in self.output()[offset:]:
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"celery worker not ready in {timeout}s:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (a crashed host)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)
