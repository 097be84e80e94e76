"""On-demand soak: thousands of transitions and alerts under random Redis faults, reconciled.

    .venv/bin/python -m tests.outages.soak --seconds 300 [--processes 3] [--threads 4]

Starts a private redis-server behind a fault proxy and a private SMTP server, runs load
processes (``tests/outages/loadworker.py``) over many fast-cycling circuits with sync alerts, and
injects a random fault every few seconds. Then it sweeps the outboxes (``events.drain()``) and
reconciles (tests/outages/reconcile.py): every transition handed to a caller is stored as exactly
one ``CircuitEvent``, every sent alert arrived exactly once, nothing is left pending, and no caller
saw a backend error.
Prints a report; exits 1 if anything does not reconcile. SQLite in a temp dir by default;
``DATABASE_URL=postgres://... --db-name <empty database>`` for PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django

from tests.support.faultproxy import FaultProxy
from tests.support.redisproc import RedisProcess
from tests.support.smtp import SMTPServer

Fault = tuple[str, Callable[[], None], Callable[[], None]]


def faults(proxy: FaultProxy, server: RedisProcess, timeout: float) -> list[Fault]:
    """(name, inject, heal) for every fault the soak draws from."""
    import redis as redis_py

    def admin() -> Any:
        return redis_py.Redis(server.host, server.port, socket_timeout=5)

    def flush_scripts() -> None:
        with admin() as client:
            client.script_flush()

    def delete_keys() -> None:
        with admin() as client:
            for key in client.scan_iter("soak:*"):
                client.delete(key)

    def client_pause() -> None:
        with admin() as client:
            client.client_pause(800, all=True)

    nothing = lambda: None  # noqa: E731
    return [
        ("refused", proxy.refuse, proxy.heal),
        ("reset", proxy.reset, proxy.heal),
        ("blackhole", proxy.blackhole, proxy.heal),
        ("slower than socket_timeout", lambda: proxy.latency(2 * timeout), proxy.heal),
        ("slow", lambda: proxy.latency(timeout / 10), proxy.heal),
        ("SIGSTOP", server.pause, server.resume),
        ("restarted empty", server.stop, server.start),
        ("SCRIPT FLUSH", flush_scripts, nothing),
        ("keys deleted", delete_keys, nothing),
        ("CLIENT PAUSE", client_pause, nothing),
    ]


def settle(drain: Callable[[], int], timeout: float = 90.0) -> None:
    """Sweep like the beat task until no alert is pending (lost ones are re-sent after 30 s)."""
    from resilience.models import AlertStatus, CircuitEvent

    deadline = time.monotonic() + timeout
    while True:
        drain()
        pending = CircuitEvent.objects.filter(alert_status=AlertStatus.PENDING).exists()
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(2.0)


def fault_at(timeline: list[tuple[float, float, str]], at: float) -> str:
    """The fault active at ``at`` (or just healed: a second of grace), else "none"."""
    for started, healed, name in timeline:
        if started <= at <= healed + 1.0:
            return name
    return "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--circuits", type=int, default=12)
    parser.add_argument("--failure-rate", type=float, default=0.5)
    parser.add_argument("--recovery-timeout", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--db-name", default=None, help="an empty database (with DATABASE_URL)")
    args = parser.parse_args(argv)
    if os.environ.get("DATABASE_URL", "sqlite").startswith("postgres") and not args.db_name:
        parser.error("with a PostgreSQL DATABASE_URL, name an empty database: --db-name NAME")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)  # noqa: S311
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="resilience-soak-"))
    with (
        SMTPServer() as smtp,
        RedisProcess() as server,
        FaultProxy(server.host, server.port) as proxy,
    ):
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
            "RESILIENCE_TEST_DB_NAME": args.db_name or str(workdir / "soak.sqlite3"),
        }
        os.environ.update(env)
        os.environ["RESILIENCE_TEST_SETTINGS"] = "null"
        django.setup()
        from django.core.management import call_command

        from resilience import events
        from resilience.models import BreakerPolicy, CircuitEvent
        from tests.outages.load import Load
        from tests.outages.reconcile import (
            alert_problems,
            alerts_settings,
            smtp_env,
            transition_problems,
        )
        from tests.outages.scenario import SOCKET_TIMEOUT, settings_for

        resilience = settings_for(proxy.url(), prefix="soak")
        resilience["ALERTS"] = alerts_settings()
        env.update(smtp_env(smtp))
        env["RESILIENCE_TEST_SETTINGS"] = json.dumps(resilience)
        call_command("migrate", verbosity=0)
        names = [f"soak-{i}" for i in range(args.circuits)]
        for name in names:
            BreakerPolicy.objects.create(
                name=name, failure_threshold=2, recovery_timeout=args.recovery_timeout
            )
        menu = faults(proxy, server, SOCKET_TIMEOUT)
        injected: Counter[str] = Counter()
        timeline: list[tuple[float, float, str]] = []
        print(f"soak: seed {seed}, {args.seconds:.0f}s, work dir {workdir}", flush=True)
        bound = 2 * SOCKET_TIMEOUT + 0.15
        load = Load(workdir, resilience, names, args.processes, args.threads, 0.002, env, bound)
        with load:
            load.fail(args.failure_rate)
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(1.0, 3.0))
                name, inject, heal = rng.choice(menu)
                injected[name] += 1
                started = time.time()
                inject()
                time.sleep(rng.uniform(0.3, 2.0))
                heal()
                timeline.append((started, time.time(), name))
            time.sleep(2.0)  # every process back on Redis before the sweep
            result = load.stop()
        from django.test.utils import override_settings

        with override_settings(RESILIENCE=resilience):
            settle(events.drain)
            problems = transition_problems(result) + alert_problems(smtp, quiet=2.0)
            stored = CircuitEvent.objects.exclude(transition_id=None)
            emitted = {t[0] for t in result.transitions()}
            totals = {
                "transitions": len(result.transitions()),
                "events": stored.count(),
                # quiet open circuits moved to half-open by the final sweep, not by a caller
                "moved": stored.exclude(transition_id__in=emitted).count(),
                "alerts": dict(Counter(stored.values_list("alert_status", flat=True))),
            }
    slow = [c for c in result.calls if c[1] > bound]
    if result.unflushed:
        problems.append(f"{result.unflushed} worker(s) could not store their events in 60 s")
    if result.leaks:
        problems.append(f"{len(result.leaks)} errors reached callers, e.g. {result.leaks[0]}")
    if slow:
        during = Counter(fault_at(timeline, call[0]) for call in slow)
        problems.append(
            f"{len(slow)} calls slower than {bound:.2f}s (max {result.slowest():.3f}s), "
            f"during: {dict(during)}; stalled in: {Counter(result.stalls).most_common(3)}"
        )
    report = {
        "seed": seed,
        "calls": len(result.calls),
        "outcomes": result.outcomes(),
        "slowest_call_s": round(result.slowest(), 3),
        "faults": dict(injected),
        **totals,
        "problems": problems,
    }
    print(json.dumps(report, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
