"""``python -m benchmarks [--quick|--smoke] [--out DIR]``: run every section, write the results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import harness

SECTIONS = ("inprocess", "profile", "redis", "scale", "stampede", "propagation", "admin")


def _log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def _without_out(argv: list[str]) -> list[str]:
    """The command line minus ``--out DIR``: where results go does not change them."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def _meta(size_name: str, argv: list[str]) -> dict[str, Any]:
    import resilience
    from benchmarks.peers import DISTRIBUTIONS, version

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=harness.ROOT, capture_output=True, text=True)
        except OSError:
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    # BENCH_COMMIT: set when the run measures an export (git archive) of a commit, no .git.
    commit = os.environ.get("BENCH_COMMIT") or git("rev-parse", "--short", "HEAD") or "unknown"
    source = Path(resilience.__file__).resolve().parent
    if source != harness.ROOT / "resilience":
        code = f"a copy at {source}"
    elif not (harness.ROOT / ".git").exists():
        code = f"a clean export of commit {commit}"
    elif git("status", "--porcelain", "--", "resilience"):
        code = "this checkout, with uncommitted changes"
    else:
        code = "this checkout, as committed"
    redis_version = ""
    if shutil.which("redis-server"):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        redis_version = next((w[2:] for w in out.stdout.split() if w.startswith("v=")), "")
    versions = {lib: version(lib) or "not installed" for lib in DISTRIBUTIONS}
    for extra in ("Django", "redis", "matplotlib"):
        try:
            from importlib import metadata

            versions[extra] = metadata.version(extra)
        except Exception:
            versions[extra] = "not installed"
    return {
        "command": " ".join(["benchmarks/run.sh", *_without_out(argv)]),
        "size": size_name,
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "code": code,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "redis": redis_version or "not found",
        "versions": versions,
    }


def _run_steps(
    results: dict, steps: list[tuple[str, str, Callable[[], Any]]], wanted: set[str], t0: float
) -> None:
    """Run each wanted ``(section, where, fn)`` and store its value at ``where`` ("a.b").

    A failing section is recorded under ``errors`` (and so in the report), never hidden.
    """
    for section, where, fn in steps:
        if section.split(":")[0] not in wanted:
            continue
        _log(f"{section} ...", t0)
        try:
            value = fn()
        except Exception as exc:
            traceback.print_exc()
            results.setdefault("errors", {})[section] = f"{type(exc).__name__}: {exc}"[:500]
            continue
        *parents, leaf = where.split(".")
        target = results
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value


def run(size_name: str, out_dir: Path, wanted: set[str], argv: list[str]) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="resilience-bench-"))
    try:
        return _run_in(state_dir, size_name, out_dir, wanted, argv)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _run_in(
    state_dir: Path, size_name: str, out_dir: Path, wanted: set[str], argv: list[str]
) -> dict[str, Any]:
    t0 = time.monotonic()
    size = harness.SIZES[size_name]
    harness.setup_django(state_dir, migrate=True)
    from benchmarks import admin_render, inprocess, scale, threads

    results: dict[str, Any] = {"meta": _meta(size_name, argv)}
    steps = [
        ("inprocess:sync", "inprocess.sync", lambda: inprocess.measure("sync", size)),
        ("inprocess:async", "inprocess.async", lambda: inprocess.measure("async", size)),
        ("profile", "profile", lambda: inprocess.profile(out_dir, size.batch * 20)),
    ]
    _run_steps(results, steps, wanted, t0)
    if wanted & {"redis", "scale", "stampede", "propagation", "admin"}:
        _redis_sections(results, size, wanted, t0)
    steps = [
        ("scale:memory", "circuits.memory", lambda: scale.circuits_and_windows(size, None)),
        ("scale:threads", "threads.memory", lambda: threads.measure(size, None)),
        ("admin:memory", "admin.memory", lambda: admin_render.measure(size, None)),
    ]
    _run_steps(results, steps, wanted, t0)
    results["meta"]["seconds"] = time.monotonic() - t0
    results["meta"]["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def _healthy(fn: Callable[[], Any]) -> Callable[[], Any]:
    """A section whose numbers are void if our backend ran on its local fallback meanwhile."""

    def checked() -> Any:
        from resilience.backends import get_backend

        before = harness.outages()
        value = fn()
        if harness.outages() != before:
            reason = get_backend().health().get("reason") or "see the log"
            raise RuntimeError(f"our Redis backend degraded to its fallback: {reason}")
        return value

    return checked


def _redis_sections(results: dict, size: harness.Size, wanted: set[str], t0: float) -> None:
    from benchmarks import admin_render, propagation, redis_cost, scale, stampede, threads

    try:
        server = harness.redis_server().start()
    except Exception as exc:
        results.setdefault("errors", {})["redis"] = f"no private redis-server: {exc}"
        return
    url = server.url
    # Worker processes report their own fallbacks (throughput, stampede tables).
    # Sections that depend on the size of the policy table (propagation, admin) set it first.
    steps = [
        ("redis", "redis", _healthy(lambda: redis_cost.measure(url, size))),
        ("stampede", "stampede", lambda: stampede.run(url, size)),
        ("scale:throughput", "throughput", lambda: scale.throughput(url, size)),
        ("scale:threads", "threads.redis", lambda: threads.measure(size, url)),
        ("scale:redis", "circuits.redis", _healthy(lambda: scale.circuits_and_windows(size, url))),
        ("propagation", "propagation", _healthy(lambda: propagation.run(size))),
        ("admin:redis", "admin.redis", _healthy(lambda: admin_render.measure(size, url))),
    ]
    try:
        with harness.redis_backend(url):
            _run_steps(results, steps, wanted, t0)
            results["meta"]["backend_outages"] = harness.outages()
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer repeats: about 2 minutes")
    group.add_argument("--smoke", action="store_true", help="tiny: proves the harness runs")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    parser.add_argument(
        "--out", type=Path, default=harness.ROOT / "benchmarks" / "results", help="output dir"
    )
    args = parser.parse_args(argv)
    size_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(size_name, args.out, set(args.only or SECTIONS), argv)

    from benchmarks import report

    try:
        from benchmarks import charts

        results["charts"] = charts.draw(results, args.out)
    except ImportError:
        print("matplotlib is not installed: no charts", file=sys.stderr)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    (args.out / "latest.md").write_text(report.render(results))
    print(f"wrote {args.out / 'latest.md'}", file=sys.stderr)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
