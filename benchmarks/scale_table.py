"""``python -m benchmarks.scale_table``: what 1 to 10,000 circuits cost (issue 15's scale table).

For each number of circuits N, on the memory backend and on Redis (a private ``redis-server``):

- **heap per circuit**: ``tracemalloc``, N ``@circuit_breaker`` functions (policy rows loaded
  first) each called once, divided by N; the same for the peers (a breaker and its decorated
  function, called once). The Redis backend's process heap, and what Redis itself holds
  (``INFO memory`` ``used_memory`` delta), per circuit;
- **ok-path time**: calls spread round-robin over the N circuits (``scale.per_call_cost``):
  memory in ns of overhead over a bare call, Redis in multiples of a ``PING``;
- **admin changelist** with N policies (``admin_render.measure``): median render time, Redis
  commands per render, the most keys one Lua script got, the longest script in Redis's SLOWLOG.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import admin_render, harness, scale
from benchmarks.inprocess import noop
from benchmarks.peers import OURS, installed, protect

COUNTS = (1, 10, 100, 1_000, 10_000)


def _heap(make: Callable[[int], Callable[[], Any]], count: int) -> tuple[float, list[Any]]:
    """Bytes of Python heap per circuit that ``make(i)`` (then one call) leaves behind, for
    ``i`` in 1..count; ``make(0)`` first, untraced, creates what the first circuit of a process
    creates once (module state, threads, caches). The objects are returned so that they
    outlive the measurement."""
    kept = [make(0)]
    kept[0]()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(1, count + 1):
            func = make(i)
            func()
            kept.append(func)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / count, kept


def heap(count: int, url: str | None, tag: str) -> dict[str, Any]:
    """Heap per circuit: ours (policy rows created and loaded beforehand, so that only what a
    circuit keeps is counted), and on the memory backend the peers."""
    from resilience import circuit_breaker

    names = [f"heap-{tag}-{count}-{i:05d}" for i in range(count + 1)]
    scale._create_policies(names)
    out: dict[str, Any] = {}
    redis_before = _redis_memory(url)
    out[OURS], kept = _heap(lambda i: circuit_breaker(names[i])(noop), count)
    if url:
        from resilience.backends import get_backend

        get_backend().flush()  # the deferred successes land: the window is stored too
        # count + 1: _heap's untraced first circuit is in Redis too.
        out["redis_used_memory"] = (_redis_memory(url) - redis_before) / (count + 1)
    else:
        for lib in ("pybreaker", "circuitbreaker"):
            if installed(lib):
                out[lib], _ = _heap(
                    lambda i, lib=lib: protect(lib, noop, f"{lib}-{count}-{i}").func, count
                )
    del kept
    return out


def _redis_memory(url: str | None) -> int:
    if not url:
        return 0
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def measure(size: harness.Size, url: str | None, counts: tuple[int, ...]) -> dict[str, Any]:
    backend = "redis" if url else "memory"
    tag = backend[0]
    rows = []
    for count in counts:
        row: dict[str, Any] = {"circuits": count, "heap": heap(count, url, tag)}
        [cost] = scale.per_call_cost(backend, size, url, [(f"t{tag}{count}", {"circuits": count})])
        row["ok_path"] = cost
        rows.append(row)
    admin = admin_render.measure(dataclasses.replace(size, policies=counts, renders=5), url)
    for row, render in zip(rows, admin["rows"], strict=True):
        row["admin"] = render
    return {"backend": backend, "rows": rows}


def table(result: dict[str, Any]) -> str:
    redis = result["backend"] == "redis"
    head = (
        "| circuits | heap per circuit, ours (B) | in Redis (B) | ok path (x PING) "
        "| changelist render (ms) | SQL queries | Redis commands per render "
        "| most keys in one script | longest script (µs) |"
        if redis
        else "| circuits | heap per circuit, ours / pybreaker / circuitbreaker (B) "
        "| ok-path overhead (ns) | changelist render (ms) | SQL queries |"
    )
    lines = [f"{result['backend']}:", "", head, "|---" * (head.count("|") - 1) + "|"]
    for row in result["rows"]:
        h, ok, admin = row["heap"], row["ok_path"], row["admin"]
        cells = [f"{row['circuits']:,}"]
        if redis:
            cells += [
                f"{h[OURS]:,.0f}",
                f"{h['redis_used_memory']:,.0f}",
                f"{ok['per_ping']['median']:.2f}",
            ]
        else:
            peers = [f"{h[k]:,.0f}" for k in (OURS, "pybreaker", "circuitbreaker") if k in h]
            cells += [" / ".join(peers), f"{ok['overhead_ns']['median']:,.0f}"]
        cells += [f"{admin['ms']['median']:,.1f}", str(admin["sql_queries"])]
        if redis:
            cells += [
                str(admin["redis_commands"]),
                str(admin["most_script_keys"]),
                f"{admin['longest_script_us']:,}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_table", description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    size = harness.SIZES["quick"]
    counts = tuple(args.counts)
    harness.run_section("scale", lambda url: measure(size, url, counts), table, out=args.out)


if __name__ == "__main__":
    main()
