"""The demo project as a newcomer runs it: alert mail lands in var/mail, nothing is written
outside var/, in embedded mode and in Redis mode (a real Celery worker with beat).

Each test runs a copy of ``project/`` and ``manage.py`` in a temporary checkout (an absolute
path, as a real clone has), in fresh processes with a clean environment.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.redisproc import free_port
from tests.support.tripscript import trip_script

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

TRIP = trip_script("demo-upstream", 2)  # the demo policy's failure_threshold


@pytest.fixture
def checkout(tmp_path):
    """A copy of the demo project, as in a fresh clone, with the var/mail/ scripts/demo.sh makes."""
    root = tmp_path / "checkout"
    (root / "var" / "mail").mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "project", root / "project", ignore=skip)
    shutil.copy2(ROOT / "manage.py", root / "manage.py")
    return root


def demo_env(**extra):
    """The environment of a newcomer's shell: none of the suite's settings or services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "EMAIL_URL")
        and not k.startswith(("CELERY_", "RESILIENCE_", "DEMO_", "SITE_URL"))
    }
    # The checkout's project first (the script's or the working directory), then resilience.
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **extra}


def manage(checkout, *args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=checkout,
        env=demo_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def outside_var(checkout):
    """Every file of the checkout that is not under var/."""
    return sorted(
        str(p.relative_to(checkout))
        for p in checkout.rglob("*")
        if p.is_file() and p.relative_to(checkout).parts[0] != "var"
    )


def test_embedded_demo_mails_the_alert_into_var_mail_and_writes_nothing_else(checkout):
    before = outside_var(checkout)
    manage(checkout, "migrate", "--noinput")
    manage(checkout, "demo_setup")
    manage(checkout, "shell", "-c", TRIP)

    mails = list((checkout / "var" / "mail").glob("*.log"))
    assert len(mails) == 1, outside_var(checkout)
    text = mails[0].read_text()
    assert "demo-upstream" in text and "oncall@example.com" in text
    assert "http://127.0.0.1:8000/admin/" in text  # the address the demo serves on
    assert outside_var(checkout) == before


def test_alert_links_follow_demo_addr(checkout):
    manage(checkout, "migrate", "--noinput")
    manage(checkout, "demo_setup")
    manage(checkout, "shell", "-c", TRIP, DEMO_ADDR="0.0.0.0:8123")
    [mail] = (checkout / "var" / "mail").glob("*.log")
    text = mail.read_text()
    assert "http://127.0.0.1:8123/admin/" in text and ":8000" not in text


def test_redis_demo_keeps_the_beat_schedule_under_var(checkout, redis_proc):
    before = outside_var(checkout)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", "--beat", "--concurrency=1"],
        cwd=checkout,
        env=demo_env(REDIS_URL=redis_proc.url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(checkout.rglob("celerybeat-schedule*")) and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stderr.read()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
    assert list((checkout / "var").glob("celerybeat-schedule*"))
    assert outside_var(checkout) == before


def test_the_served_demo_makes_traffic_for_the_admin_charts(checkout, redis_proc):
    """From its first request on, the demo site calls payments-api, search and demo-upstream in
    the background (project/demo/traffic.py): the outcome history (in Redis, read here by
    another process) has their calls within a few seconds."""
    addr = f"127.0.0.1:{free_port()}"
    env = {"REDIS_URL": redis_proc.url, "DEMO_ADDR": addr}
    manage(checkout, "migrate", "--noinput", **env)
    manage(checkout, "demo_setup", **env)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", addr],
        cwd=checkout,
        env=demo_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    read = (
        "from resilience import breaker; import json; print(json.dumps({name: sum(b['calls'] "
        "for b in breaker(name).history(minutes=5)) for name in "
        "('payments-api', 'search', 'demo-upstream')}))"
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the first request starts the traffic
            assert server.poll() is None, server.stderr.read()
            try:
                urllib.request.urlopen(f"http://{addr}/unrelated/", timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the demo site did not answer"
                time.sleep(0.2)
        while True:  # each process sends its counts every 5 s
            output = manage(checkout, "shell", "-c", read, **env).stdout
            calls = json.loads(output.strip().splitlines()[-1])
            busier = calls["payments-api"] > calls["demo-upstream"]  # 4 calls a second, against 1
            if (all(calls.values()) and busier) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert all(calls.values()), calls
    assert calls["payments-api"] > calls["demo-upstream"]  # 4 calls a second, against 1
