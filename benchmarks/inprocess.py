"""In-process overhead of a protected no-op call on the ok, failure and open paths, sync, async."""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.peers import ASYNC_LIBS, MAX_THRESHOLD, OURS, SYNC_LIBS, installed, protect

PATHS = ("ok", "failure", "open")


class Boom(Exception):
    """The upstream's failure."""


def noop() -> None:
    return None


def fail() -> None:
    raise Boom


async def anoop() -> None:
    return None


async def afail() -> None:
    raise Boom


# Bare and protected calls run in the same loops, so the loop's own cost cancels out.
def ok_loop(f: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            f()

    return run


def raising_loop(f: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            try:
                f()
            except Exception:  # the upstream's error or the breaker's rejection
                pass

    return run


def async_ok_loop(f: Callable[[], Any]) -> Callable[[int], Any]:
    async def run(n: int) -> None:
        for _ in repeat(None, n):
            await f()

    return run


def async_raising_loop(f: Callable[[], Any]) -> Callable[[int], Any]:
    async def run(n: int) -> None:
        for _ in repeat(None, n):
            try:
                await f()
            except Exception:  # the upstream's error or the breaker's rejection
                pass

    return run


def measure(flavour: str, size: harness.Size) -> dict[str, Any]:
    """Time bare and protected calls of every installed library; ``flavour`` is sync or async."""
    is_async = flavour == "async"
    libs = [lib for lib in (ASYNC_LIBS if is_async else SYNC_LIBS) if installed(lib)]
    missing = [lib for lib in (ASYNC_LIBS if is_async else SYNC_LIBS) if not installed(lib)]
    ok_fn, fail_fn = (anoop, afail) if is_async else (noop, fail)
    ok_wrap, raise_wrap = (
        (async_ok_loop, async_raising_loop) if is_async else (ok_loop, raising_loop)
    )
    loop = asyncio.new_event_loop() if is_async else None

    def runner(fn: Callable[[int], Any], n: int) -> Any:
        return loop.run_until_complete(fn(n)) if loop is not None else fn(n)

    # Our failure path must never trip: every failure of the run stays under the threshold.
    assert size.batch * (size.repeats + 1) < MAX_THRESHOLD
    paths: dict[str, Any] = {}
    try:
        for path in PATHS:
            upstream = ok_fn if path == "ok" else fail_fn
            wrap = ok_wrap if path == "ok" else raise_wrap
            threshold = 1 if path == "open" else MAX_THRESHOLD
            subjects = {"bare": wrap(upstream)}
            for lib in libs:
                name = f"inproc-{flavour}-{path}-{lib}"
                func = protect(lib, upstream, name, threshold=threshold).func
                if path == "open":
                    _trip(func, runner, lib)
                subjects[lib] = wrap(func)
            times = harness.interleaved(subjects, size.batch, size.repeats, runner)
            paths[path] = analyse(times, libs)
    finally:
        if loop is not None:
            loop.close()
    return {"libs": libs, "missing": missing, "paths": paths}


def _trip(func: Callable[[], Any], runner: Callable, lib: str) -> None:
    """Open the circuit with one failure, then check the upstream is no longer reached."""
    for attempt in range(2):
        try:
            runner(lambda _n: func(), 1)
        except Boom:
            if attempt:
                raise RuntimeError(f"{lib}: the circuit did not open after a failure") from None
        except Exception:  # the breaker's own error: open, as intended
            pass


def analyse(times: dict[str, list[float]], libs: list[str]) -> dict[str, Any]:
    """Per library: ns per call, ratio to the bare call and overhead, each paired by repeat;
    and our overhead as a ratio of every peer's."""
    bare = times["bare"]
    out: dict[str, Any] = {"bare": {"ns": harness.summary(bare)}}
    overheads = {}
    for lib in libs:
        overheads[lib] = harness.paired(times[lib], bare, harness.minus)
        out[lib] = {
            "ns": harness.summary(times[lib]),
            "ratio_to_bare": harness.summary(harness.paired(times[lib], bare, harness.ratio)),
            "overhead_ns": harness.summary(overheads[lib]),
        }
    for lib in libs:
        if lib != OURS:
            out[OURS][f"overhead_vs_{lib}"] = harness.summary(
                harness.paired(overheads[OURS], overheads[lib], harness.ratio)
            )
    return out


def profile(out_dir: Path, calls: int) -> dict[str, str]:
    """Profiles of our sync ok and open paths as text files: pyinstrument (sampling, when
    installed: realistic proportions) and cProfile (deterministic: call counts)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None
    written = {}
    for path, upstream, wrap, threshold in (
        ("ok", noop, ok_loop, MAX_THRESHOLD),
        ("open", fail, raising_loop, 1),
    ):
        func = protect(OURS, upstream, f"profile-{path}", threshold=threshold).func
        run = wrap(func)
        run(1000)  # opens the "open" circuit, warms the "ok" one
        if Profiler is not None:
            profiler = Profiler(interval=0.0001)
            profiler.start()
            run(calls)
            profiler.stop()
            name = f"profile_{path}_pyinstrument.txt"
            text = profiler.output_text(unicode=False, color=False, show_all=True)
            (out_dir / name).write_text(_strip_paths(text))
            written[f"{path} path, pyinstrument"] = name
        stats = cProfile.Profile()
        stats.runcall(run, calls)
        text = io.StringIO()
        pstats.Stats(stats, stream=text).sort_stats("tottime").print_stats(15)
        name = f"profile_{path}_cprofile.txt"
        (out_dir / name).write_text(_strip_paths(text.getvalue()))
        written[f"{path} path, cProfile"] = name
    return written


def _strip_paths(text: str) -> str:
    """Shorten absolute paths so committed profiles do not depend on the checkout location."""
    return text.replace(str(harness.ROOT) + "/", "").replace(str(Path.home()), "~")
