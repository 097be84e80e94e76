"""The benchmark harness runs end to end in its tiny configuration, so it cannot rot unnoticed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("DATABASE_URL")),
        reason="the harness uses its own SQLite database: a PostgreSQL run adds nothing",
    ),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed"),
]


def test_smoke_run_writes_every_section(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert "errors" not in results
    for section in (
        "inprocess",
        "redis",
        "throughput",
        "threads",
        "circuits",
        "stampede",
        "propagation",
    ):
        assert results.get(section), section
    assert set(results["inprocess"]) == {"sync", "async"}
    assert results["redis"]["results"]["ours"]["open"]["round_trips"] == 0
    assert {r["backend"] for r in results["admin"].values()} == {"memory", "redis"}
    assert all(r["opened"] == 1 for r in results["stampede"]["rows"] if r["lib"] == "ours")
    report = (tmp_path / "latest.md").read_text()
    assert "## Targets" in report
    assert "| memory backend, ok path (sync) |" in report
