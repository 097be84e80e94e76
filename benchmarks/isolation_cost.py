"""``python -m benchmarks.isolation_cost``: what a bulkhead cap or a slow-call deadline costs a
healthy call on the Redis backend.

One no-op function per policy (the default; ``max_concurrent_calls`` 2; ``slow_call_ms`` 1000;
docs/hangs.md's recommended policy), each called N times in a row from one thread, then N times
from 4 threads at once (N/4 each), against a private ``redis-server``. Per protected call:

- **caller round trips**: requests the calling threads sent to Redis (counted inside redis-py,
  a pipeline is one): what a call waits for;
- **background round trips**: requests other threads of the process sent meanwhile (deferred
  successes, bulkhead slots given back, lease renewals), up to ``SETTLE`` seconds after the last
  call: ``POLICY_REFRESH_SECONDS`` (1 s) is the longest a deferred success waits;
- **commands executed**: the delta of ``INFO commandstats`` (commands a Lua script runs are
  counted there), with the breakdown by command;
- **refused**: calls refused with ``BulkheadFullError`` (4 threads against a cap of 2).

    python -m benchmarks.isolation_cost                          # this checkout
    python -m benchmarks.isolation_cost --code /tmp/before --label ebaf9b3   # another tree

Results: ``benchmarks/results/isolation_cost.json`` (or ``--out``; a run of another tree is
added to the file under its label) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

CALLS = 2_000
THREADS = 4
SETTLE = 1.3  # seconds for background sends to land (deferred successes wait up to 1 s)
VARIANTS: dict[str, dict[str, Any]] = {
    "default policy": {},
    "max_concurrent_calls=2": {"max_concurrent_calls": 2},
    "slow_call_ms=1000": {"slow_call_ms": 1000},
    "recommended (cap 2, slow 1000 ms, timeout 2000 ms)": {
        "max_concurrent_calls": 2,
        "slow_call_ms": 1000,
        "call_timeout_ms": 2000,
    },
}


def _protected(name: str, extra: dict[str, Any]) -> Any:
    from benchmarks.inprocess import noop
    from benchmarks.peers import set_policy
    from resilience import circuit_breaker
    from resilience.policies import registry

    set_policy(name, failure_threshold=5, recovery_timeout=60.0, **extra)
    registry.get(name)
    return circuit_breaker(name)(noop)


def _calls(func: Any, n: int) -> int:
    """``n`` calls; returns how many were refused (a full bulkhead)."""
    from resilience.exceptions import CircuitOpenError

    refused = 0
    for _ in range(n):
        try:
            func()
        except CircuitOpenError:  # BulkheadFullError is one
            refused += 1
    return refused


def _threaded(func: Any, n: int, trips: Any) -> int:
    refused: list[int] = []
    start = threading.Barrier(THREADS)

    def work() -> None:
        trips.add_caller()
        start.wait()
        refused.append(_calls(func, n // THREADS))

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(refused)


def measure(url: str, calls: int = CALLS, settle: float = SETTLE) -> dict[str, Any]:
    import redis

    from benchmarks.redis_cost import RoundTrips, commandstats
    from resilience.models import BreakerPolicy

    fields = {f.name for f in BreakerPolicy._meta.get_fields()}
    admin = redis.Redis.from_url(url)
    out: dict[str, Any] = {}
    with RoundTrips() as trips:
        for variant, extra in VARIANTS.items():
            if not set(extra) <= fields:
                out[variant] = {"skipped": "no such policy field in this code"}
                continue
            rows: dict[str, Any] = {}
            for mode in ("sequential", f"{THREADS} threads"):
                name = f"iso-{len(out)}-{mode[0]}"
                func = _protected(name, extra)
                _calls(func, 20)  # scripts loaded, keys and policy row in place
                time.sleep(settle)
                before, rt_before = commandstats(admin), trips.snapshot()
                started = time.perf_counter()
                if mode == "sequential":
                    refused = _calls(func, calls)
                else:
                    refused = _threaded(func, calls, trips)
                elapsed = time.perf_counter() - started
                time.sleep(settle)
                rt_after, commands = trips.snapshot(), commandstats(admin) - before
                caller = (rt_after[0] - rt_before[0]) / calls
                background = (rt_after[1] - rt_before[1]) / calls
                rows[mode] = {
                    "calls": calls,
                    "refused": refused,
                    "caller_round_trips": caller,
                    "background_round_trips": background,
                    "total_round_trips": caller + background,
                    "commands": sum(commands.values()) / calls,
                    "by_command": {k: round(v / calls, 3) for k, v in sorted(commands.items())},
                    "us_per_call": elapsed / calls * 1e6,
                }
            out[variant] = rows
    admin.close()
    return out


def table(label: str, results: dict[str, Any]) -> str:
    lines = [
        f"Code: {label}",
        "",
        "| policy | calls from | round trips the caller waited for | total round trips "
        "(caller + background) | commands executed | by command | refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, rows in results.items():
        if "skipped" in rows:
            lines.append(f"| {variant} | — | {rows['skipped']} | | | | |")
            continue
        for mode, r in rows.items():
            by = ", ".join(f"{k} {v:g}" for k, v in r["by_command"].items() if v >= 0.001)
            lines.append(
                f"| {variant} | {mode} | {r['caller_round_trips']:.3f} | "
                f"{r['total_round_trips']:.3f} ({r['caller_round_trips']:.3f} + "
                f"{r['background_round_trips']:.3f}) | {r['commands']:.2f} | {by} | "
                f"{r['refused']} of {r['calls']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.isolation_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--code", type=Path, help="measure the resilience package in this tree")
    parser.add_argument("--label", help="what to call the code measured (default: its commit)")
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument(
        "--out", type=Path, default=harness.ROOT / "benchmarks" / "results" / "isolation_cost.json"
    )
    args = parser.parse_args(argv)
    harness.use_code(args.code)
    state = Path(tempfile.mkdtemp(prefix="resilience-isocost-"))
    server = harness.redis_server().start()
    try:
        harness.setup_django(state, migrate=True)
        from resilience.policies import registry

        registry.background = False  # no policy edits here; its queries are not the call's
        with harness.redis_backend(server.url):
            before = harness.outages()
            results = measure(server.url, args.calls)
            if harness.outages() != before:
                raise RuntimeError("our Redis backend degraded to its fallback: figures void")
    finally:
        server.close()
        shutil.rmtree(state, ignore_errors=True)
    label = args.label or (f"export at {args.code}" if args.code else _commit())
    saved = json.loads(args.out.read_text()) if args.out.exists() else {}
    saved[label] = {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "calls": args.calls,
        "threads": THREADS,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    print(table(label, results))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _commit() -> str:
    import subprocess

    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=harness.ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "this checkout"


if __name__ == "__main__":
    sys.exit(main())
