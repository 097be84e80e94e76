"""``python -m benchmarks.isolation_cost``: Redis cost of a healthy call with a cap or a deadline.

Issue 14 asks that the healthy path stay at one Redis round trip with ``max_concurrent_calls``
set. This measures, for a protected no-op (``@circuit_breaker(name)``, the Redis backend with
the benchmark's settings: deferred successes on, ``socket_timeout`` 2 s) under each policy of
``VARIANTS``, over ``--calls`` sequential calls and over ``--threads`` threads sharing the same
number of calls:

- **caller round trips**: requests the calling threads sent to Redis and waited for (every
  redis-py ``send_packed_command``; a pipeline is one), per call;
- **background round trips**: requests sent by the process's other threads meanwhile and
  until the calls' left-overs (deferred successes, slot give-backs) have landed, per call;
- **commands executed**: the delta of ``INFO commandstats`` (server-wide, the ``INFO``
  itself excluded; the commands a Lua script runs count), per call, and by command.

A call is acquire + the no-op + its success + its slot's give-back. Calls refused with
``BulkheadFullError`` (threads can have more calls in flight than a cap of 2) are counted
apart; their round trip is in the figures. The state lives in a private ``redis-server`` on a
free loopback port (``tests/support/redisproc.py``), never the system one; the run checks that
the backend never fell back to its local state and that every slot came back. The policy
registry's background refresh is off (its queries go to the database, not to Redis).

    benchmarks/.venv/bin/python -m benchmarks.isolation_cost                 # about 20 s
    benchmarks/.venv/bin/python -m benchmarks.isolation_cost --code /tmp/before --label ebaf9b3

``--code DIR`` measures the ``resilience`` package in DIR (a ``git archive`` export of another
commit); policy fields that code does not have are skipped. Results:
``benchmarks/results/isolation_cost.json`` (or ``--out``), one entry per label (a run adds or
replaces its own), and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import harness

VARIANTS: dict[str, dict[str, Any]] = {
    "default policy": {},
    "max_concurrent_calls=2": {"max_concurrent_calls": 2},
    # As many slots as threads: a cap the concurrent run should not reach.
    "max_concurrent_calls=4": {"max_concurrent_calls": 4},
    "slow_call_ms=1000": {"slow_call_ms": 1000},
    # docs/hangs.md's recommended values for 4 sync workers.
    "recommended (cap 2, slow 1000, timeout 2000)": {
        "max_concurrent_calls": 2,
        "slow_call_ms": 1000,
        "call_timeout_ms": 2000,
    },
}
WARM = 20  # calls before counting: connection, scripts loaded, the circuit's first hash
SETTLE_SECONDS = 5.0  # the most we wait for deferred successes and give-backs to land


class Sent:
    """Counts every request redis-py sends (``AbstractConnection.send_packed_command``), by
    thread: the calling threads register themselves; every other thread is background."""

    def __init__(self) -> None:
        self.by_thread: Counter[int] = Counter()
        self.callers: set[int] = set()
        self._original: Any = None

    def __enter__(self) -> Sent:
        from redis.connection import AbstractConnection

        self._original = original = AbstractConnection.send_packed_command
        by_thread = self.by_thread

        def counting(conn: Any, *args: Any, **kwargs: Any) -> Any:
            by_thread[threading.get_ident()] += 1  # one thread per key: no lost update
            return original(conn, *args, **kwargs)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        from redis.connection import AbstractConnection

        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]

    def split(self) -> tuple[int, int]:
        counts = dict(self.by_thread)
        caller = sum(n for ident, n in counts.items() if ident in self.callers)
        return caller, sum(counts.values()) - caller


def noop() -> None:
    return None


def _commandstats(admin: Any) -> Counter[str]:
    stats = admin.info("commandstats")
    return Counter(
        {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}
    )


def _calls(func: Callable[[], Any], n: int, refused: list[int]) -> None:
    from resilience.exceptions import CircuitOpenError

    for _ in range(n):
        try:
            func()
        except CircuitOpenError:  # BulkheadFullError is one; the circuit itself never opens
            refused.append(1)


def _settle(backend: Any) -> bool:
    """Wait (bounded) until the process has nothing left to send; True if it got there."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        health = backend.health()
        if not health.get("deferred_successes") and not health.get("slots_to_return"):
            time.sleep(0.05)  # a batch taken off the queues may still be on the wire
            health = backend.health()
            if not health.get("deferred_successes") and not health.get("slots_to_return"):
                return True
        time.sleep(0.02)
    return False


def measure_one(
    admin: Any, sent: Sent, name: str, extra: dict[str, Any], calls: int, threads: int
) -> dict[str, Any]:
    from benchmarks.peers import set_policy
    from resilience import breaker, circuit_breaker
    from resilience.backends import get_backend
    from resilience.policies import registry

    set_policy(name, **extra)
    registry.get(name)
    func = circuit_breaker(name)(noop)
    backend = get_backend()
    _calls(func, WARM, [])
    _settle(backend)
    outages_before = harness.outages()
    per_thread = calls // threads
    refused: list[int] = []
    before = _commandstats(admin)
    sent.by_thread.clear()
    sent.callers.clear()
    if threads == 1:
        sent.callers.add(threading.get_ident())
        started = time.perf_counter()
        _calls(func, per_thread, refused)
    else:
        gate = threading.Barrier(threads + 1)

        def worker() -> None:
            sent.callers.add(threading.get_ident())
            gate.wait()
            _calls(func, per_thread, refused)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        gate.wait()
        started = time.perf_counter()
        for t in pool:
            t.join()
    elapsed = time.perf_counter() - started
    settled = _settle(backend)
    caller, background = sent.split()
    commands = _commandstats(admin) - before
    done = per_thread * threads
    snapshot = breaker(name).snapshot()
    return {
        "circuit": name,
        "policy": extra,
        "threads": threads,
        "calls": done,
        "refused_bulkhead_full": len(refused),
        "caller_round_trips": caller / done,
        "background_round_trips": background / done,
        "total_round_trips": (caller + background) / done,
        "commands": sum(commands.values()) / done,
        "by_command": {k: v / done for k, v in sorted(commands.items())},
        "microseconds_per_call": elapsed / done * 1e6,
        "settled": settled,
        "in_flight_after": snapshot.get("in_flight"),
        "state_after": snapshot.get("state"),
        "fell_back": harness.outages() - outages_before,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| policy | calls | caller round trips / call | background / call | total / call "
        "| commands / call (by command) | refused (bulkhead full) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['variant']} | {r['skipped']} | | | | | |")
            continue
        each = r["calls"] // r["threads"]
        shape = f"{r['calls']:,} sequential" if r["threads"] == 1 else f"{r['threads']} x {each:,}"
        by = ", ".join(f"{k} {v:.2f}" for k, v in r["by_command"].items())
        lines.append(
            f"| {r['variant']} | {shape} | {r['caller_round_trips']:.2f} "
            f"| {r['background_round_trips']:.3f} | {r['total_round_trips']:.2f} "
            f"| {r['commands']:.2f} ({by}) | {r['refused_bulkhead_full']} |"
        )
    return "\n".join(lines) + "\n"


def _git(*args: str, cwd: Path) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.isolation_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls per measurement")
    parser.add_argument("--threads", type=int, default=4, help="threads of the concurrent run")
    parser.add_argument("--code", type=Path, help="measure the resilience package in this tree")
    parser.add_argument("--label", help="the entry's name in the results (default: the commit)")
    parser.add_argument(
        "--out", type=Path, default=harness.ROOT / "benchmarks" / "results" / "isolation_cost.json"
    )
    args = parser.parse_args(argv)
    harness.use_code(args.code)
    state = Path(tempfile.mkdtemp(prefix="resilience-isocost-"))
    harness.setup_django(state, migrate=True)
    import redis

    from resilience.models import BreakerPolicy
    from resilience.policies import registry

    registry.background = False
    fields = {f.name for f in BreakerPolicy._meta.get_fields()}
    server = harness.redis_server().start()
    rows: list[dict[str, Any]] = []
    try:
        admin = redis.Redis.from_url(server.url)
        with harness.redis_backend(server.url), Sent() as sent:
            for number, (variant, extra) in enumerate(VARIANTS.items()):
                if not set(extra) <= fields:
                    rows.append({"variant": variant, "skipped": "no such policy field"})
                    continue
                for threads in (1, args.threads):
                    name = f"iso-{number}-t{threads}"
                    row = measure_one(admin, sent, name, extra, args.calls, threads)
                    row["variant"] = variant
                    rows.append(row)
                    print(
                        f"{variant}, {threads} thread(s): {row['caller_round_trips']:.2f} caller"
                        f" + {row['background_round_trips']:.3f} background round trips,"
                        f" {row['commands']:.2f} commands per call",
                        file=sys.stderr,
                        flush=True,
                    )
        redis_version = str(admin.info("server").get("redis_version", "?"))
        admin.close()
    finally:
        server.stop()
    code = (args.code or harness.ROOT).resolve()
    commit = _git("rev-parse", "--short", "HEAD", cwd=code) if args.code is None else ""
    if commit and _git("status", "--porcelain", "--", "resilience", cwd=code):
        commit += " with uncommitted changes"
    label = args.label or commit or str(code)
    meta = {
        "command": " ".join(["python -m benchmarks.isolation_cost", *(argv or sys.argv[1:])]),
        "code": str(code),
        "commit": commit or "an export: see the label",
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "redis_py": redis.__version__,
    }
    problems = [
        f"{r['variant']} x{r['threads']}: {what}"
        for r in rows
        if "skipped" not in r
        for what, bad in (
            ("fell back to local state", r["fell_back"]),
            ("left-overs not sent within the settle time", not r["settled"]),
            (f"{r['in_flight_after']} slots still taken", r["in_flight_after"]),
        )
        if bad
    ]
    saved = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "meta" in saved:  # the one-entry layout of the first version of this file
        saved = {saved["meta"].get("commit", "earlier run"): saved}
    saved[label] = {"meta": meta, "rows": rows, "problems": problems}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    print(f"Code: {label}\n")
    print(table(rows))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
