"""Redis cost of one protected call: round trips, commands (INFO commandstats), time in PINGs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks import harness
from benchmarks.inprocess import (
    afail,
    anoop,
    async_ok_loop,
    async_raising_loop,
    fail,
    noop,
    ok_loop,
    raising_loop,
)
from benchmarks.peers import MAX_THRESHOLD, OURS, REDIS_LIBS, installed, protect

# Ours last: its deferred successes are flushed by a background thread after the last call, and
# that must not land in a peer's counting window. Trip first for the same reason.
PATHS = ("trip", "open", "failure", "ok")
TRIP_AFTER = 5  # failures that open the circuit on the tripping path


class RoundTrips:
    """Counts the requests every redis-py connection of this process sends (a pipeline is one),
    split into the measuring thread and background threads."""

    def __init__(self) -> None:
        self.caller = 0
        self.background = 0
        self._thread = threading.get_ident()
        self._saved: list[tuple[type, Any]] = []

    def _count(self) -> None:
        if threading.get_ident() == self._thread:
            self.caller += 1
        else:
            self.background += 1

    def __enter__(self) -> RoundTrips:
        import redis.asyncio.connection as async_connection
        import redis.connection as sync_connection

        counter = self

        sync_send = sync_connection.AbstractConnection.send_packed_command
        async_send = async_connection.AbstractConnection.send_packed_command

        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter._count()
            return sync_send(self, *args, **kwargs)

        async def asend(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter._count()
            return await async_send(self, *args, **kwargs)

        for cls, replacement in (
            (sync_connection.AbstractConnection, send),
            (async_connection.AbstractConnection, asend),
        ):
            self._saved.append((cls, cls.send_packed_command))
            cls.send_packed_command = replacement  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for cls, original in self._saved:
            cls.send_packed_command = original  # type: ignore[method-assign]
        self._saved.clear()

    def snapshot(self) -> tuple[int, int]:
        return self.caller, self.background


def commandstats(admin: Any) -> Counter:
    """Calls per command name since the server started, the benchmark's own INFO excluded."""
    stats = admin.info("commandstats")
    return Counter(
        {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}
    )


def measure(url: str, size: harness.Size) -> dict[str, Any]:
    """Every path of every installed library with a Redis storage, against the server at url."""
    import redis

    admin = redis.Redis.from_url(url)
    libs = [lib for lib in REDIS_LIBS if lib != OURS and installed(lib)] + [OURS]
    out: dict[str, Any] = {
        "libs": libs,
        "missing": [lib for lib in REDIS_LIBS if not installed(lib)],
        "flavour": dict(REDIS_LIBS),
        "results": {},
    }
    with RoundTrips() as trips:
        for lib in libs:
            loop = asyncio.new_event_loop() if REDIS_LIBS[lib] == "async" else None
            try:
                out["results"][lib] = _measure_lib(lib, url, size, admin, trips, loop)
            except Exception as exc:  # a peer that cannot run with this redis-py is reported
                out["results"][lib] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            finally:
                if loop is not None:
                    loop.close()
            time.sleep(size.settle)
    admin.close()
    return out


def _measure_lib(
    lib: str, url: str, size: harness.Size, admin: Any, trips: RoundTrips, loop: Any
) -> dict[str, Any]:
    is_async = loop is not None

    def runner(fn: Callable[[int], Any], n: int) -> Any:
        return loop.run_until_complete(fn(n)) if is_async else fn(n)

    ok_fn, fail_fn = (anoop, afail) if is_async else (noop, fail)
    ok_wrap, raise_wrap = (
        (async_ok_loop, async_raising_loop) if is_async else (ok_loop, raising_loop)
    )
    result: dict[str, Any] = {}
    for path in PATHS:
        if path == "trip":
            result[path] = _trip_path(lib, url, size, admin, trips, runner, fail_fn, raise_wrap)
            continue
        threshold = {"ok": TRIP_AFTER, "failure": MAX_THRESHOLD, "open": 1}[path]
        protected = protect(
            lib, ok_fn if path == "ok" else fail_fn, f"rc-{path}-{lib}", threshold=threshold,
            redis_url=url,
        )  # fmt: skip
        run = (ok_wrap if path == "ok" else raise_wrap)(protected.func)
        runner(run, 20)  # connect, load scripts, create keys; opens the "open" circuit
        n = size.redis_batch
        before, rt_before = commandstats(admin), trips.snapshot()
        runner(run, n)
        time.sleep(size.settle if lib == OURS else 0)
        rt_after = trips.snapshot()
        commands = commandstats(admin) - before
        result[path] = _counts(commands, rt_before, rt_after, n)
        result[path]["per_ping"] = _time_in_pings(protected.client, run, size, runner, is_async)
    return result


def _trip_path(
    lib: str,
    url: str,
    size: harness.Size,
    admin: Any,
    trips: RoundTrips,
    runner: Callable,
    fail_fn: Callable,
    raise_wrap: Callable,
) -> dict[str, Any]:
    """The call that opens a fresh circuit (after TRIP_AFTER - 1 failures), one circuit each."""
    commands: Counter = Counter()
    caller = background = 0
    call_ns, ping_ns = [], []
    for i in range(-1, size.redis_repeats):  # -1: not counted; loads what a first trip needs
        protected = protect(lib, fail_fn, f"rc-trip{i}-{lib}", threshold=TRIP_AFTER, redis_url=url)
        run = raise_wrap(protected.func)
        runner(run, TRIP_AFTER - 1)
        ping = ping_loop(protected.client, REDIS_LIBS[lib] == "async")
        runner(ping, 1)
        time.sleep(size.settle)
        before, rt_before = commandstats(admin), trips.snapshot()
        started = time.perf_counter_ns()
        runner(run, 1)
        elapsed = time.perf_counter_ns() - started
        time.sleep(size.settle)
        rt_after, after = trips.snapshot(), commandstats(admin)
        started = time.perf_counter_ns()
        runner(ping, 1)
        if i < 0:
            continue
        ping_ns.append(time.perf_counter_ns() - started)
        call_ns.append(elapsed)
        commands += after - before
        caller += rt_after[0] - rt_before[0]
        background += rt_after[1] - rt_before[1]
    n = size.redis_repeats
    out = _counts(commands, (0, 0), (caller, background), n)
    out["per_ping"] = harness.summary(harness.paired(call_ns, ping_ns, harness.ratio))
    return out


def _counts(
    commands: Counter, rt_before: tuple[int, int], rt_after: tuple[int, int], n: int
) -> dict[str, Any]:
    return {
        "round_trips": (rt_after[0] - rt_before[0]) / n,
        "background_round_trips": (rt_after[1] - rt_before[1]) / n,
        "commands": sum(commands.values()) / n,
        "by_command": {name: count / n for name, count in sorted(commands.items())},
    }


def ping_loop(client: Any, in_loop: bool) -> Callable[[int], Any]:
    """PINGs on ``client``: a coroutine function when the runner drives an event loop."""
    import redis.asyncio

    if isinstance(client, redis.asyncio.Redis):

        async def aping(n: int) -> None:
            for _ in range(n):
                await client.ping()

        return aping

    def ping(n: int) -> None:
        for _ in range(n):
            client.ping()

    if not in_loop:
        return ping

    async def ping_in_loop(n: int) -> None:  # a sync client used from a coroutine (aiobreaker)
        ping(n)

    return ping_in_loop


def _time_in_pings(
    client: Any, run: Callable, size: harness.Size, runner: Callable, in_loop: bool
) -> dict[str, float]:
    """Time per protected call divided by the time of a PING on the same client, per repeat."""
    times = harness.interleaved(
        {"ping": ping_loop(client, in_loop), "call": run},
        size.redis_batch,
        size.redis_repeats,
        runner,
    )
    return harness.summary(harness.paired(times["call"], times["ping"], harness.ratio))
