"""Drive several ``loadworker`` processes and read back what their callers experienced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection

from tests.outages.loadworker import FAILED, LEAK, OK, REJECTED

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = {OK: "ok", FAILED: "failed", REJECTED: "rejected", LEAK: "leak"}


@dataclass
class Result:
    """What every process saw: calls ``[start, seconds, outcome]``, health samples, transitions."""

    calls: list[list[float]] = field(default_factory=list)
    health: list[list[list[Any]]] = field(default_factory=list)  # one list per process
    emitted: list[list[list[Any]]] = field(default_factory=list)  # one list per process
    reasons: list[list[list[Any]]] = field(default_factory=list)  # health changes, per process
    leaks: list[str] = field(default_factory=list)
    unflushed: int = 0  # workers whose events.flush() timed out at exit
    stalls: list[str] = field(default_factory=list)  # stacks of calls slower than ``stall``
    logs: list[str] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[list[float]]:
        return [c for c in self.calls if start <= c[0] < end]

    def outcomes(self, start: float = 0, end: float = float("inf")) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.between(start, end):
            name = OUTCOMES[int(call[2])]
            counts[name] = counts.get(name, 0) + 1
        return counts

    def slowest(self, start: float = 0, end: float = float("inf")) -> float:
        return max((c[1] for c in self.between(start, end)), default=0.0)

    def degraded_during(self, start: float, end: float) -> list[bool]:
        """Per process: was ``health()["degraded"]`` ever True in ``[start, end)``?"""
        return [any(s[1] for s in samples if start <= s[0] < end) for samples in self.health]

    def recovered_at(self, after: float) -> list[float | None]:
        """Per process: when health turned (and stayed) not degraded after ``after``."""
        times: list[float | None] = []
        for samples in self.health:
            since = None
            for at, degraded in samples:
                if at < after:
                    continue
                if degraded:
                    since = None
                elif since is None:
                    since = at
            times.append(since)
        return times

    def transitions(self, since: float = 0) -> list[list[Any]]:
        """Every ``[id, kind, at_ms, circuit]`` handed over, by any process, at/after ``since``."""
        return [t for per in self.emitted for t in per if t[2] >= since * 1000 - 5]


class Load:
    """``processes`` × ``threads`` callers of ``@circuit_breaker(name)`` with ``settings``.

    Each call goes to one of ``circuits`` (a name or a list) at random. The workers use the
    current database (the test database under ``django_db(transaction=True)``) and the
    ``RESILIENCE`` dict given here; ``fail(True)`` makes every protected call raise,
    ``fail(0.3)`` three in ten.
    """

    def __init__(
        self,
        tmp_path: Path,
        resilience: dict[str, Any],
        circuits: str | list[str],
        processes: int = 2,
        threads: int = 4,
        pace: float = 0.004,
        env: dict[str, str] | None = None,
        stall: float = 0.5,
    ) -> None:
        self.dir = tmp_path
        self.resilience = resilience
        self.circuits = [circuits] if isinstance(circuits, str) else list(circuits)
        self.processes = processes
        self.threads = threads
        self.pace = pace
        self.env = env or {}
        self.stall = stall
        self.control = tmp_path / "control.json"
        self.procs: list[subprocess.Popen] = []
        self._logs: list[Any] = []

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for log in self._logs:
            log.close()

    def _write_control(self, **values: Any) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(self.control)  # atomic: a reader never sees half a file

    def start(self, timeout: float = 60.0) -> Load:
        self._write_control(fail=False, stop=False)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
            "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
            "RESILIENCE_TEST_SETTINGS": json.dumps(self.resilience),
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        readies = []
        for i in range(self.processes):
            config = {
                "circuits": self.circuits,
                "threads": self.threads,
                "pace": self.pace,
                "stall": self.stall,
                "control": str(self.control),
                "ready": str(self.dir / f"ready-{i}"),
                "out": str(self.dir / f"out-{i}.json"),
            }
            path = self.dir / f"config-{i}.json"
            path.write_text(json.dumps(config))
            log = open(self.dir / f"log-{i}.txt", "w")  # noqa: SIM115 - closed in __exit__
            self._logs.append(log)
            self.procs.append(
                subprocess.Popen(  # noqa: S603 - fixed argv
                    [sys.executable, "-m", "tests.outages.loadworker", str(path)],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            readies.append(Path(config["ready"]))
        deadline = time.monotonic() + timeout
        while not all(r.exists() for r in readies):
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"load workers did not start: {self._read_logs()}")
            time.sleep(0.05)
        return self

    def fail(self, failing: bool | float) -> None:
        self._write_control(fail=failing, stop=False)

    def stop(self, timeout: float = 180.0) -> Result:
        self._write_control(fail=False, stop=True)
        result = Result()
        for i, proc in enumerate(self.procs):
            proc.wait(timeout)
            out = self.dir / f"out-{i}.json"
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"load worker {i} failed: {self._read_logs()}")
            data = json.loads(out.read_text())
            result.calls += data["calls"]
            result.health.append(data["health"])
            result.emitted.append(data["emitted"])
            result.reasons.append(data["reasons"])
            result.stalls += data["stalls"]
            result.leaks += data["leaks"]
            result.unflushed += not data["flushed"]
        result.logs = self._read_logs()
        return result

    def _read_logs(self) -> list[str]:
        logs = []
        for i in range(self.processes):
            path = self.dir / f"log-{i}.txt"
            logs.append(path.read_text()[-20_000:] if path.exists() else "")
        return logs
