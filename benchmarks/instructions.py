"""``python -m benchmarks.instructions``: instructions per protected call, counted by callgrind.

Wall-clock figures on a shared 2-core machine move with the load; instruction counts do not.
Every subject of the in-process benchmark (a bare call, ours on the memory backend,
circuitbreaker, pybreaker; ok, failure and open paths, sync and async) runs in one Python
process under ``valgrind --tool=callgrind``, together with our tracked paths (a policy that sets
``max_concurrent_calls``, one that sets ``slow_call_ms``). callgrind dumps its counters every
time the process calls ``os.getppid()`` (``--dump-before=os_getppid``), which the child does
around two batches of every subject: ``N_SMALL`` and then ``N_LARGE`` calls. The cost of one
call is the difference of the two batches divided by the difference of their sizes, so that
start-up and whatever a batch costs once (the loop, the marker, an event loop's first step)
cancel out. The overhead is that minus the bare call's, measured the same way in the same
loop code.

    python -m benchmarks.instructions                               # this checkout
    python -m benchmarks.instructions --code before=/tmp/before --code main=.   # side by side
    python -m benchmarks.instructions --only sync/failure --only sync/open      # some rows

``--code LABEL=DIR`` measures the ``resilience`` package found in DIR (a ``git archive`` export
of another commit, say); the benchmark's own code is always this checkout's. Each code tree
gets its own migrated SQLite database. Results: ``benchmarks/results/instructions.json`` (or
``--out``) and a table on stdout.

What is left out on purpose: the policy registry's background refresh is off in the child (a
thread waking on wall-clock time would land in whichever batch it happens to interrupt, and
callgrind slows the process some 50-fold), so figures are the call path's alone. Only the main
thread's instructions make a call's cost (``--separate-threads=yes``): the other threads (the
watchdog, the events writer) wake on wall-clock time, and counting them moved even the peers'
figures by up to 60 % between two runs; their instructions are reported apart
(``background_per_call``, left out when zero). Collection is
off during the batches (as in ``timeit`` and in the wall-clock harness).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
N_SMALL, N_LARGE = 1_000, 5_000
WARM = 300  # calls of every subject before its first counted batch
PEERS = ("circuitbreaker", "pybreaker")
# Our tracked variants: the extra policy fields (a cap of 2 is never reached by sequential calls).
VARIANTS: dict[str, dict[str, Any]] = {
    "ours": {},
    "ours cap=2": {"max_concurrent_calls": 2},
    "ours slow=1000": {"slow_call_ms": 1000},
}
PATHS = ("ok", "failure", "open")


def _marker() -> None:
    os.getppid()  # callgrind dumps (and zeroes) its counters on entering os_getppid


# --- the child: runs under callgrind ------------------------------------------------------------


def _child(code: Path, state: Path, labels_out: Path | None, only: list[str]) -> None:
    from benchmarks import harness

    harness.use_code(code)
    harness.setup_django(state, migrate=labels_out is None)
    if labels_out is None:
        return  # --migrate: the database is ready
    from resilience.policies import registry

    registry.background = False  # see the module docstring
    labels: list[Any] = []
    _measure_all(labels, only)
    labels_out.write_text(json.dumps(labels))


def _measure_all(labels: list[Any], only: list[str]) -> None:
    import asyncio

    from benchmarks import inprocess
    from benchmarks.peers import MAX_THRESHOLD, installed, protect
    from resilience.models import BreakerPolicy

    fields = {f.name for f in BreakerPolicy._meta.get_fields()}
    loop = asyncio.new_event_loop()

    def run_async(fn: Callable[[int], Any], n: int) -> Any:
        return loop.run_until_complete(fn(n))

    def run_sync(fn: Callable[[int], Any], n: int) -> Any:
        return fn(n)

    gc.collect()
    gc.freeze()
    for flavour in ("sync", "async"):
        is_async = flavour == "async"
        runner = run_async if is_async else run_sync
        ok_fn, fail_fn = (
            (inprocess.anoop, inprocess.afail) if is_async else (inprocess.noop, inprocess.fail)
        )
        ok_wrap, raise_wrap = (
            (inprocess.async_ok_loop, inprocess.async_raising_loop)
            if is_async
            else (inprocess.ok_loop, inprocess.raising_loop)
        )
        peers = [p for p in PEERS if installed(p) and not (is_async and p == "pybreaker")]
        for path in PATHS:
            if only and f"{flavour}/{path}" not in only:
                continue
            upstream = ok_fn if path == "ok" else fail_fn
            wrap = ok_wrap if path == "ok" else raise_wrap
            threshold = 1 if path == "open" else MAX_THRESHOLD
            subjects: dict[str, Callable[[], Any] | None] = {"bare": upstream}
            for variant, extra in VARIANTS.items():
                if not set(extra) <= fields:
                    labels.append(
                        {
                            "subject": f"{flavour}/{path}/{variant}",
                            "skipped": "no such policy field",
                        }
                    )
                    continue
                name = f"icount-{flavour}-{path}-{variant.replace(' ', '-').replace('=', '')}"
                subjects[variant] = _ours(upstream, name, threshold, extra)
            for peer in peers:
                subjects[peer] = protect(
                    peer, upstream, f"icount-{flavour}-{path}-{peer}", threshold=threshold
                ).func
            for subject, func in subjects.items():
                if path == "open" and subject != "bare":
                    inprocess._trip(func, runner, subject)
                _count(labels, f"{flavour}/{path}/{subject}", wrap(func), runner)
    loop.close()


def _ours(
    upstream: Callable[[], Any], name: str, threshold: int, extra: dict[str, Any]
) -> Callable[[], Any]:
    from benchmarks.peers import set_policy
    from resilience import circuit_breaker
    from resilience.policies import registry

    set_policy(name, failure_threshold=threshold, recovery_timeout=86_400.0, **extra)
    registry.get(name)
    return circuit_breaker(name)(upstream)


def _count(labels: list[Any], subject: str, fn: Callable[[int], Any], runner: Callable) -> None:
    runner(fn, WARM)
    gc.collect()
    gc.disable()
    try:
        _marker()
        labels.append(None)  # the dump that ends here holds set-up and warm-up: not counted
        runner(fn, N_SMALL)
        _marker()
        labels.append({"subject": subject, "calls": N_SMALL})
        runner(fn, N_LARGE)
        _marker()
        labels.append({"subject": subject, "calls": N_LARGE})
    finally:
        gc.enable()


# --- the driver ---------------------------------------------------------------------------------


def _python() -> str:
    return sys.executable


def _measure_code(label: str, code: Path, work: Path, only: list[str]) -> dict[str, Any]:
    state = work / label / "state"
    dumps = work / label / "dumps"
    state.mkdir(parents=True)
    dumps.mkdir(parents=True)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    base = [_python(), "-m", "benchmarks.instructions", "--child", str(code), "--state", str(state)]
    subprocess.run([*base, "--migrate"], cwd=ROOT, env=env, check=True)
    labels_file = work / label / "labels.json"
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--dump-before=os_getppid",
        "--separate-threads=yes",
        f"--callgrind-out-file={dumps}/cg.%p",
    ]
    proc = subprocess.run(
        [*valgrind, *base, "--labels", str(labels_file), *(f"--only={x}" for x in only)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: the callgrind child failed:\n{proc.stderr[-3000:]}")
    labels = json.loads(labels_file.read_text())
    counted = [x for x in labels if x is None or "calls" in x]
    totals = _dump_totals(dumps)
    if len(totals) < len(counted):
        raise RuntimeError(f"{label}: {len(totals)} dumps for {len(counted)} markers")
    batches: dict[str, dict[int, tuple[int, int]]] = {}
    for item, total in zip(counted, totals, strict=False):
        if item is not None:
            batches.setdefault(item["subject"], {})[item["calls"]] = total
    span = N_LARGE - N_SMALL
    per_call = {s: (by[N_LARGE][0] - by[N_SMALL][0]) / span for s, by in batches.items()}
    background = {s: (by[N_LARGE][1] - by[N_SMALL][1]) / span for s, by in batches.items()}
    skipped = {x["subject"]: x["skipped"] for x in labels if x is not None and "skipped" in x}
    return {
        "label": label,
        "code": str(code),
        "commit": _commit(code),
        "per_call": per_call,
        "background_per_call": {s: round(v) for s, v in background.items() if round(v)},
        "skipped": skipped,
    }


def _dump_totals(dumps: Path) -> list[tuple[int, int]]:
    """``(main thread, other threads)`` instructions of every numbered dump (``cg.PID.N-TT``,
    one file per thread), in order; the exit dump is left out. The other threads (the
    watchdog, the slot and success senders, the events writer) wake on wall-clock time, which
    callgrind stretches some 50-fold, so their share is reported apart, not added to a call."""
    by_dump: dict[int, list[int]] = {}
    for path in dumps.iterdir():
        match = re.fullmatch(r"cg\.\d+\.(\d+)-(\d+)", path.name)
        if not match:
            continue
        found = re.search(r"^(?:totals|summary): (\d+)", path.read_text(), re.MULTILINE)
        cell = by_dump.setdefault(int(match.group(1)), [0, 0])
        cell[0 if int(match.group(2)) == 1 else 1] += int(found.group(1)) if found else 0
    return [(main, others) for _, (main, others) in sorted(by_dump.items())]


def _commit(code: Path) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "resilience"],
        cwd=code,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return "an export (no .git): see the label"
    return out.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def analyse(per_call: dict[str, float]) -> dict[str, Any]:
    """Overheads (per call minus the bare call of the same flavour and path) and our overhead
    as a multiple of each peer's."""
    out: dict[str, Any] = {}
    for subject, instructions in per_call.items():
        flavour, path, who = subject.split("/")
        bare = per_call[f"{flavour}/{path}/bare"]
        row = out.setdefault(f"{flavour}/{path}", {})
        row[who] = {"per_call": round(instructions), "overhead": round(instructions - bare)}
    for row in out.values():
        for who in list(row):
            if who.startswith("ours"):
                for peer in PEERS:
                    if peer in row and row[peer]["overhead"]:
                        row[who][f"vs_{peer}"] = round(
                            row[who]["overhead"] / row[peer]["overhead"], 2
                        )
    return out


def table(results: list[dict[str, Any]]) -> str:
    """Overheads in instructions per call, each code tree a column, ratios to the peers."""
    labels = [r["label"] for r in results]
    keys: list[tuple[str, str]] = []
    for r in results:
        for row_key, row in r["overheads"].items():
            for who in row:
                if who != "bare" and (row_key, who) not in keys:
                    keys.append((row_key, who))
    head = (
        "| path | subject | "
        + " | ".join(f"{x}: overhead (x circuitbreaker, x pybreaker)" for x in labels)
        + " |"
    )
    lines = [head, "|" + "---|" * (2 + len(labels))]
    for row_key, who in keys:
        cells = []
        for r in results:
            cell = r["overheads"].get(row_key, {}).get(who)
            if cell is None:
                cells.append("—")
                continue
            ratios = [f"{cell[f'vs_{p}']:.2f}x" for p in PEERS if f"vs_{p}" in cell]
            cells.append(f"{cell['overhead']:,}" + (f" ({', '.join(ratios)})" if ratios else ""))
        lines.append(f"| {row_key} | {who} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--code", action="append", metavar="LABEL=DIR", help="a resilience tree to measure"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "instructions.json"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FLAVOUR/PATH",
        help="measure only these rows (sync/ok, async/failure, ...); repeatable",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--migrate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child.resolve(), args.state, None if args.migrate else args.labels, args.only)
        return 0
    if not shutil.which("valgrind"):
        parser.error("valgrind is not installed (apt-get install valgrind)")
    trees = []
    for spec in args.code or [f"this={ROOT}"]:
        label, _, where = spec.partition("=")
        if not where:
            parser.error(f"--code wants LABEL=DIR, got {spec!r}")
        trees.append((label, Path(where).resolve()))
    work = Path(tempfile.mkdtemp(prefix="resilience-icount-"))
    results = []
    try:
        for label, code in trees:
            print(f"==> {label}: {code} under callgrind", file=sys.stderr, flush=True)
            measured = _measure_code(label, code, work, args.only)
            measured["overheads"] = analyse(measured["per_call"])
            results.append(measured)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from benchmarks.peers import version

    meta = {
        "command": " ".join(
            ["python -m benchmarks.instructions", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "valgrind": subprocess.run(
            ["valgrind", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "batches": [N_SMALL, N_LARGE],
        "versions": {p: version(p) or "not installed" for p in PEERS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "results": results}, indent=1, sort_keys=True) + "\n"
    )
    print(table(results))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
