"""Scale: throughput of processes x threads on one Redis circuit; cost vs circuits and window."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks import harness
from benchmarks.inprocess import noop
from benchmarks.peers import OURS, installed, protect
from benchmarks.procs import Workers
from benchmarks.redis_cost import RoundTrips, ping_loop

SHARED = "scale-shared"
UPSTREAM_SECONDS = {"noop": 0.0, "1ms": 0.001}


def _upstream(kind: str) -> Callable[[], None]:
    if kind == "noop":
        return noop
    pause = UPSTREAM_SECONDS[kind]

    def io_call() -> None:  # stands for a network call: the GIL is released while it waits
        time.sleep(pause)

    return io_call


# --- throughput ---------------------------------------------------------------------------------


def throughput_libs() -> list[str]:
    return [lib for lib in (OURS, "pybreaker") if installed(lib)]


def _throughput_worker(
    index: int, barrier: Any, outbox: Any, url: str, plan: list[tuple], seconds: float
) -> None:
    protected = {
        (lib, kind): protect(lib, _upstream(kind), f"{SHARED}-{kind}-{lib}", redis_url=url).func
        for lib, kind, _threads in plan
    }
    for func in protected.values():
        func()  # connect and load scripts before the clock starts
    for lib, kind, threads in plan:
        func = protected[lib, kind]
        counts = [0] * threads
        barrier.wait()
        deadline = time.perf_counter() + seconds

        def work(
            slot: int,
            func: Callable[[], None] = func,
            counts: list[int] = counts,
            deadline: float = deadline,
        ) -> None:
            n = 0
            while time.perf_counter() < deadline:
                func()
                n += 1
            counts[slot] = n

        started = time.perf_counter()
        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        rate = sum(counts) / (time.perf_counter() - started)
        outbox.put(("calls", index, rate, harness.outages()))


def throughput(url: str, size: harness.Size) -> dict[str, Any]:
    """Calls per second through one circuit shared by N processes x T threads, via Redis."""
    libs = throughput_libs()
    plan = [
        (lib, kind, threads)
        for kind in UPSTREAM_SECONDS
        for threads in size.threads
        for lib in libs
    ]
    for kind in UPSTREAM_SECONDS:  # the policy rows exist before the workers start
        protect(OURS, _upstream(kind), f"{SHARED}-{kind}-{OURS}", redis_url=url)
    rows = []
    for processes in size.processes:
        with Workers(_throughput_worker, processes, url, plan, size.seconds) as workers:
            for lib, kind, threads in plan:
                workers.sync()
                messages = workers.collect()
                rows.append(
                    {
                        "lib": lib,
                        "upstream": kind,
                        "processes": processes,
                        "threads": threads,
                        "calls_per_second": sum(m[2] for m in messages),
                        "backend_outages": max(m[3] for m in messages),
                    }
                )
    return {"libs": libs, "upstreams": list(UPSTREAM_SECONDS), "rows": rows}


# --- number of circuits and window size ---------------------------------------------------------


def _create_policies(names: list[str], **fields: Any) -> None:
    from resilience.models import BreakerPolicy
    from resilience.policies import registry

    existing = set(BreakerPolicy.objects.filter(name__in=names).values_list("name", flat=True))
    BreakerPolicy.objects.bulk_create(
        [BreakerPolicy(name=n, **fields) for n in names if n not in existing], batch_size=500
    )
    registry.refresh()  # load every row now: the timed calls hit a warm policy cache


def _cycle(funcs: list[Callable[[], Any]]) -> Callable[[int], None]:
    """Calls spread round-robin over the circuits, as a site with many upstreams would; each
    batch continues where the previous one stopped, so every circuit keeps being visited."""
    circular = itertools.cycle(funcs)

    def run(n: int) -> None:
        for func in itertools.islice(circular, n):
            func()

    return run


def per_call_cost(
    backend: str, size: harness.Size, url: str | None, variants: list[tuple[str, dict]]
) -> list[dict[str, Any]]:
    """Our ok-path cost for each (label, policy fields + "circuits") variant.

    Memory: ns per call and ratio to a bare call; Redis: multiples of a PING and round trips.
    """
    from resilience import circuit_breaker
    from resilience.backends import get_backend

    rows = []
    for label, fields in variants:
        fields = dict(fields)
        count = fields.pop("circuits")
        names = [f"{label}-{i:05d}" for i in range(count)]
        _create_policies(names, **fields)
        funcs = [circuit_breaker(name)(noop) for name in names]
        run = _cycle(funcs)
        run(count)  # first call of each circuit: keys, scripts, lazily created state
        batch = size.redis_batch if url else size.batch
        row: dict[str, Any] = {"label": label, "circuits": count, **fields}
        if url:
            client = get_backend().client
            subjects = {"ping": ping_loop(client, False), "call": run}
            times = harness.interleaved(subjects, batch, size.redis_repeats)
            row["per_ping"] = harness.summary(
                harness.paired(times["call"], times["ping"], harness.ratio)
            )
            with RoundTrips() as trips:
                run(batch)
                row["round_trips"] = trips.caller / batch
        else:
            bare = _cycle([noop] * count)
            times = harness.interleaved({"bare": bare, "call": run}, batch, size.repeats)
            row["ns"] = harness.summary(times["call"])
            row["overhead_ns"] = harness.summary(
                harness.paired(times["call"], times["bare"], harness.minus)
            )
        rows.append(row)
    return rows


def circuits_and_windows(size: harness.Size, url: str | None) -> dict[str, Any]:
    """Cost per ok call as the number of circuits grows, and as the failure-rate window grows."""
    backend = "redis" if url else "memory"
    tag = backend[0]
    circuits = [(f"n{tag}{count}", {"circuits": count}) for count in size.circuits]
    windows = [
        (
            f"w{tag}{seconds}",
            {
                "circuits": 1,
                "window_seconds": seconds,
                "failure_rate_threshold": 50,
                "minimum_calls": 10,
            },
        )
        for seconds in size.windows
    ]
    return {
        "backend": backend,
        "circuits": per_call_cost(backend, size, url, circuits),
        "windows": per_call_cost(backend, size, url, windows),
    }
