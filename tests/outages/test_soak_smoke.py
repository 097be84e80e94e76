"""The on-demand soak still runs and reconciles: a few seconds of it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.redisproc import REDIS_SERVER

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(not REDIS_SERVER, reason="redis-server is not installed")
def test_a_short_soak_reconciles():
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.pop("DATABASE_URL", None)  # its own SQLite file: the soak migrates a fresh database
    args = ["--seconds", "6", "--processes", "2", "--threads", "2", "--circuits", "4"]
    run = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "tests.outages.soak", *args, "--seed", "7"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads(run.stdout[run.stdout.index("{") :])
    assert run.returncode == 0, report["problems"]
    assert report["transitions"] > 10
    assert report["events"] == report["transitions"] + report["moved"]
    assert report["alerts"].get("sent", 0) > 0 and sum(report["faults"].values()) >= 1
