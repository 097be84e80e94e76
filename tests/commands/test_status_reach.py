"""manage.py resilience status says whose state it shows, and fails when it cannot read it.

Issue 18: on the memory backend it listed every circuit ``closed`` (its own process's state) and,
with Redis down, the local fallback's state, both with exit status 0.
"""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from resilience import breaker
from resilience.management.commands.resilience import Command
from resilience.management.subcommands.shared import PER_PROCESS_NOTE
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.usefixtures("breaker_db")


def status(*args):
    out, err = StringIO(), StringIO()
    call_command("resilience", "status", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_memory_backend_says_the_states_are_this_process_only():
    BreakerPolicyFactory(name="search")
    out, err = status()
    assert "search" in out
    assert err.strip() == PER_PROCESS_NOTE
    out, err = status("--json")
    assert json.loads(out)["shared_state"] is False
    assert err.strip() == PER_PROCESS_NOTE


def test_redis_down_fails_with_exit_status_1(settings, redis_proc, capsys):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_proc.url, "prefix": "status-reach", "socket_timeout": 0.2},
    }
    BreakerPolicyFactory(name="payments-api", failure_threshold=1)
    with pytest.raises(ConnectionError), breaker("payments-api"):
        raise ConnectionError("down")
    out, err = status("--json")
    report = json.loads(out)
    assert report["shared_state"] is True and err == ""  # shared: no per-process note
    assert report["circuits"]["payments-api"]["state"] == "open"

    redis_proc.stop()
    with pytest.raises(CommandError, match="backend could not be read"):
        status()
    with pytest.raises(SystemExit) as info:
        Command().run_from_argv(["manage.py", "resilience", "status"])
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert "payments-api" in captured.out and "(degraded)" in captured.out  # still printed
    assert "backend could not be read" in captured.err
