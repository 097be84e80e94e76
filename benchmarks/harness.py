"""Shared machinery: run sizes, Django set-up, the private Redis, interleaved timing, summaries."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Size:
    """How much work every section does: ``smoke`` (the test), ``quick`` or ``full``."""

    batch: int  # protected calls per timed in-process batch
    repeats: int  # interleaved repetitions of every timed batch
    redis_batch: int
    redis_repeats: int
    processes: tuple[int, ...]
    threads: tuple[int, ...]
    seconds: float  # duration of one throughput measurement
    thread_seconds: float  # threads of one process on one circuit (benchmarks/threads.py)
    thread_repeats: int
    circuits: tuple[int, ...]
    windows: tuple[int, ...]
    stampede: tuple[int, ...]
    stampede_calls: int  # calls per process against the failing upstream
    workers: tuple[int, ...]  # propagation: worker processes
    rounds: int  # propagation: edits (and resets) timed per worker count
    policies: tuple[int, ...]  # admin changelist sizes
    renders: int
    filler: int  # propagation is measured again among this many other policies (0: not)
    settle: float  # seconds for background work of a call (ours: outbox acks) to land


SIZES = {
    "smoke": Size(
        batch=300, repeats=3, redis_batch=50, redis_repeats=2,
        processes=(2,), threads=(1,), seconds=0.2, thread_seconds=0.05, thread_repeats=1,
        circuits=(1, 10), windows=(60,),
        stampede=(2,), stampede_calls=10, workers=(2,), rounds=1, policies=(10,), renders=2,
        filler=0, settle=0.05,
    ),
    "quick": Size(
        batch=3_000, repeats=7, redis_batch=300, redis_repeats=5,
        processes=(1, 2, 4), threads=(1, 4), seconds=1.0, thread_seconds=0.3, thread_repeats=5,
        circuits=(1, 100, 10_000),
        windows=(1, 60, 3600), stampede=(8,), stampede_calls=30, workers=(4,), rounds=3,
        policies=(10, 100), renders=5, filler=10_000, settle=0.15,
    ),
    "full": Size(
        batch=10_000, repeats=15, redis_batch=1_000, redis_repeats=9,
        processes=(1, 2, 4, 8), threads=(1, 4), seconds=2.0, thread_seconds=0.5,
        thread_repeats=11,
        circuits=(1, 10, 100, 1_000, 10_000), windows=(1, 60, 3600),
        stampede=(8, 16), stampede_calls=50, workers=(2, 4, 8), rounds=5,
        policies=(10, 100, 1_000), renders=11, filler=10_000, settle=0.15,
    ),
}  # fmt: skip


# --- the code measured ---------------------------------------------------------------------------


def use_code(code: Path | None) -> None:
    """Measure the ``resilience`` package in ``code`` (a ``git archive`` export of another
    commit, say) instead of this checkout's; call before anything imports it. The benchmark's
    own modules stay this checkout's (``benchmarks`` is imported already)."""
    if code is None:
        return
    code = code.resolve()
    if "resilience" in sys.modules:
        raise RuntimeError("resilience is imported already: too late to choose its code")
    sys.path.insert(0, str(code))
    import resilience

    found = Path(resilience.__file__).resolve().parent
    if found != code / "resilience":
        raise RuntimeError(f"imported resilience from {found}, not from {code}")


# --- Django -------------------------------------------------------------------------------------


def setup_django(state_dir: Path | None = None, *, migrate: bool = False) -> None:
    """Configure ``benchmarks.settings`` (SQLite in ``state_dir``); spawned workers inherit it."""
    if state_dir is not None:
        os.environ["BENCH_STATE_DIR"] = str(state_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    if str(ROOT) not in sys.path:  # appended: never shadow the code being measured
        sys.path.append(str(ROOT))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


@contextlib.contextmanager
def redis_backend(url: str) -> Iterator[None]:
    """Our Redis backend at ``url``, in this process and in workers spawned meanwhile."""
    from django.test.utils import override_settings

    from resilience.policies import registry

    saved = {key: os.environ.get(key) for key in ("BENCH_BACKEND", "BENCH_REDIS_URL")}
    os.environ.update(BENCH_BACKEND="redis", BENCH_REDIS_URL=url)
    from benchmarks.settings import resilience_for

    try:
        with override_settings(RESILIENCE=resilience_for("redis", url)):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        registry.clear()


def keep_only_policies(prefix: str) -> None:
    """Delete every policy row not named ``prefix...``, so a figure that depends on the size of
    the table measures the size it says (earlier sections leave thousands of rows behind)."""
    from resilience.models import BreakerPolicy
    from resilience.policies import registry

    BreakerPolicy.objects.exclude(name__startswith=prefix).delete()
    registry.clear()


def outages() -> int:
    """How often this process's backend lost Redis and ran on its fallback (0 for memory)."""
    from resilience.backends import get_backend

    return int(get_backend().health().get("outages", 0))


def redis_server() -> Any:
    """A private ``redis-server`` on a free loopback port (never the system one on 6379)."""
    if str(ROOT) not in sys.path:  # appended: never shadow the code being measured
        sys.path.append(str(ROOT))
    from tests.support.redisproc import RedisProcess

    return RedisProcess()


def run_section(
    name: str,
    measure: Callable[[str | None], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    *,
    out: Path | None = None,
    memory_only: bool = False,
) -> dict[str, Any]:
    """Run one section alone (``python -m benchmarks.<name>``): ``measure(url)`` on the memory
    backend (``None``), then on a private Redis, in a fresh Django state; prints each table and
    writes the results as JSON to ``out``."""
    state = Path(tempfile.mkdtemp(prefix=f"resilience-{name}-"))
    try:
        setup_django(state, migrate=True)
        results = {"memory": measure(None)}
        if not memory_only:
            server = redis_server().start()
            try:
                with redis_backend(server.url):
                    results["redis"] = measure(server.url)
            finally:
                server.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    for result in results.values():
        print(table(result))
    if out:
        out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return results


# --- timing -------------------------------------------------------------------------------------

Runner = Callable[[Callable[[int], Any], int], Any]


def run_sync(fn: Callable[[int], Any], n: int) -> Any:
    return fn(n)


def interleaved(
    subjects: dict[str, Callable[[int], Any]],
    batch: int,
    repeats: int,
    runner: Runner = run_sync,
    seed: int = 1,
) -> dict[str, list[float]]:
    """Nanoseconds per call of every subject, one value per repeat.

    Every repeat times one batch of each subject in a fresh random order, so that drift of the
    machine's speed (other tenants, frequency scaling) hits every subject alike; the garbage
    collector is off inside a batch, as in ``timeit``. ``runner(fn, n)`` runs ``fn(n)`` (or,
    for coroutines, ``loop.run_until_complete(fn(n))``).
    """
    order = list(subjects)
    shuffle = random.Random(seed).shuffle
    for fn in subjects.values():  # warm-up: caches, lazily created state, first-use branches
        runner(fn, max(1, batch // 10))
    out: dict[str, list[float]] = {name: [] for name in order}
    # Long-lived objects (Django, the libraries) move out of the collector's sight, so the
    # collection before each batch costs microseconds instead of a full heap walk.
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeats):
            shuffle(order)
            for name in order:
                gc.collect()
                gc.disable()
                try:
                    started = perf_counter_ns()
                    runner(subjects[name], batch)
                    elapsed = perf_counter_ns() - started
                finally:
                    gc.enable()
                out[name].append(elapsed / batch)
    finally:
        gc.unfreeze()
    return out


def summary(values: list[float]) -> dict[str, float]:
    """Median, quartiles and range of repeated measurements."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        p25 = p75 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "p25": p25,
        "p75": p75,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def paired(a: list[float], b: list[float], op: Callable[[float, float], float]) -> list[float]:
    """``op`` applied repeat by repeat: values measured side by side stay together."""
    return [op(x, y) for x, y in zip(a, b, strict=True)]


def ratio(x: float, y: float) -> float:
    return x / y if y else float("inf")


def minus(x: float, y: float) -> float:
    return x - y
