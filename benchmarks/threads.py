"""Threads of one process calling one closed circuit: calls per second at 1, 2 and 4 threads.

Issue 15: "throughput that does not fall from 2 to 4 threads". Every subject (ours, the peers,
and a baseline without any breaker) is measured at every thread count in one run, the
(subject, threads) pairs in a fresh random order per repeat, so that the machine's load drifts
over all of them alike; the ratios (4 threads / 2 threads, ...) are taken repeat by repeat.

The baseline says what the interpreter and the client allow at all: on the memory backend the
bare no-op (a pure-Python loop holds the GIL: more threads cannot add calls, only switches);
on Redis one ``HMGET`` through our backend's own client and connection pool, which is what our
healthy call sends (more threads overlap the round trips until the process's CPU, which holds
the GIL while redis-py encodes and parses, is used up).
"""

from __future__ import annotations

import random
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks import harness
from benchmarks.inprocess import noop
from benchmarks.peers import OURS, installed, protect

COUNTS = (1, 2, 4)
BASELINE = "baseline"


def rate(func: Callable[[], Any], threads: int, seconds: float) -> tuple[float, float, float]:
    """Calls per second of ``threads`` threads calling ``func`` for ``seconds``; the process's
    CPU time per call (µs) and its context switches per call (``getrusage``, every thread of
    the process: ours's background sender too). Unlike the wall-clock rate, these two do not
    depend on what the machine's other tenants do: if neither grows with the threads, nothing
    in the process contends.

    The threads start together at a barrier; the main thread sleeps (it holds no GIL meanwhile)
    and then raises the stop flag, which the workers read every 4 calls.
    """
    counts = [0] * threads
    stop: list[bool] = [False]
    barrier = threading.Barrier(threads + 1)

    def work(slot: int) -> None:
        n = 0
        barrier.wait()
        while not stop[0]:
            func()
            func()
            func()
            func()
            n += 4
        counts[slot] = n

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    time.sleep(seconds)
    stop[0] = True
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    calls = max(1, sum(counts))
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    switches = after.ru_nvcsw + after.ru_nivcsw - usage.ru_nvcsw - usage.ru_nivcsw
    return calls / elapsed, cpu * 1e6 / calls, switches / calls


def _subjects(url: str | None) -> dict[str, Callable[[], Any]]:
    backend = "redis" if url else "memory"
    libs = [OURS, "pybreaker"] if url else [OURS, "circuitbreaker", "pybreaker"]
    subjects: dict[str, Callable[[], Any]] = {}
    for lib in libs:
        if installed(lib):
            subjects[lib] = protect(lib, noop, f"threads-{backend}-{lib}", redis_url=url).func
    if url:
        from resilience.backends import get_backend

        backend_obj: Any = get_backend()
        key = backend_obj._keys(f"threads-{backend}-{OURS}")[0]
        client = backend_obj.client

        def hmget() -> Any:
            return client.hmget(key, ("state", "generation", "epoch", "failures"))

        subjects[BASELINE] = hmget
    else:
        subjects[BASELINE] = noop
    for func in subjects.values():
        for _ in range(200):  # connections, scripts, lazily created state
            func()
    return subjects


def measure(size: harness.Size, url: str | None) -> dict[str, Any]:
    """Calls per second per subject and thread count (summaries over the repeats), and the
    paired ratios of every thread count to 1 thread and of 4 threads to 2."""
    from resilience.backends import get_backend

    subjects = _subjects(url)
    before = harness.outages()
    runs: dict[tuple[str, int], list[float]] = {(s, t): [] for s in subjects for t in COUNTS}
    cpu: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    switches: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    order = list(runs)
    shuffle = random.Random(2).shuffle
    for _ in range(size.thread_repeats):
        shuffle(order)
        for subject, threads in order:
            measured = rate(subjects[subject], threads, size.thread_seconds)
            runs[subject, threads].append(measured[0])
            cpu[subject, threads].append(measured[1])
            switches[subject, threads].append(measured[2])
    if harness.outages() != before:
        reason = get_backend().health().get("reason") or "see the log"
        raise RuntimeError(f"our Redis backend degraded to its fallback: {reason}")
    rows = []
    for subject in subjects:
        one, two, four = (runs[subject, t] for t in COUNTS)
        rows.append(
            {
                "subject": subject,
                "calls_per_second": {str(t): harness.summary(runs[subject, t]) for t in COUNTS},
                "cpu_us_per_call": {str(t): harness.summary(cpu[subject, t]) for t in COUNTS},
                "switches_per_call": {
                    str(t): harness.summary(switches[subject, t]) for t in COUNTS
                },
                "2_vs_1": harness.summary(harness.paired(two, one, harness.ratio)),
                "4_vs_1": harness.summary(harness.paired(four, one, harness.ratio)),
                "4_vs_2": harness.summary(harness.paired(four, two, harness.ratio)),
            }
        )
    return {
        "backend": "redis" if url else "memory",
        "threads": list(COUNTS),
        "seconds": size.thread_seconds,
        "repeats": size.thread_repeats,
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    """Markdown: calls per second at each thread count (median [p25-p75]) and the ratios."""
    lines = [
        f"{result['backend']}: calls/s, median [p25-p75] of {result['repeats']} repeats x "
        f"{result['seconds']:g} s",
        "",
        "| subject | 1 thread | 2 threads | 4 threads | 2 / 1 | 4 / 2 "
        "| CPU µs per call at 1 / 2 / 4 | context switches per call at 1 / 2 / 4 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cps = row["calls_per_second"]
        cells = [f"{cps[str(t)]['median']:,.0f}" for t in COUNTS]
        ratios = [
            f"{row[k]['median']:.2f} [{row[k]['p25']:.2f}-{row[k]['p75']:.2f}]"
            for k in ("2_vs_1", "4_vs_2")
        ]
        cpu = " / ".join(f"{row['cpu_us_per_call'][str(t)]['median']:.2f}" for t in COUNTS)
        sw = " / ".join(f"{row['switches_per_call'][str(t)]['median']:.3f}" for t in COUNTS)
        lines.append(f"| {row['subject']} | " + " | ".join([*cells, *ratios, cpu, sw]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """``python -m benchmarks.threads [--quick] [--memory-only]``: this section alone."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    size = harness.SIZES["quick" if args.quick else "full"]
    harness.run_section(
        "threads",
        lambda url: measure(size, url),
        table,
        out=args.out,
        memory_only=args.memory_only,
    )


if __name__ == "__main__":
    main()
