"""N processes calling one failing upstream at once: how many times does the circuit open?"""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks import harness
from benchmarks.peers import OURS, installed, protect, set_policy
from benchmarks.procs import Workers

THRESHOLD = 5  # consecutive failures that open the circuit
RECOVERY = 3600  # no trial call during the run


def stampede_libs() -> list[str]:
    return [lib for lib in (OURS, "pybreaker") if installed(lib)]


def _name(processes: int, round_: int, lib: str) -> str:
    return f"stampede-{processes}p-r{round_}-{lib}"


def _count_our_opens() -> Counter:
    """Open transitions this process performs, per circuit (the decorator emits each one)."""
    from resilience import events

    opened: Counter = Counter()
    emit = events.emit

    def counting_emit(circuit: str, transitions: list, *args: Any, **kwargs: Any) -> None:
        opened[circuit] += sum(1 for t in transitions if t.kind == "opened")
        emit(circuit, transitions, *args, **kwargs)

    events.emit = counting_emit
    return opened


def _count_pybreaker_opens(breaker: Any, name: str, opened: Counter) -> None:
    open_ = breaker.open

    def counting_open() -> Any:  # pybreaker calls open() when this process decides to trip
        opened[name] += 1
        return open_()

    breaker.open = counting_open


def _stampede_worker(
    index: int, barrier: Any, outbox: Any, url: str, processes: int, rounds: int, calls: int
) -> None:
    from resilience import events
    from resilience.policies import registry

    opened = _count_our_opens()
    for round_ in range(rounds):
        for lib in stampede_libs():
            reached = [0]

            def upstream(reached: list[int] = reached) -> None:
                reached[0] += 1
                raise ConnectionError("upstream down")

            name = _name(processes, round_, lib)
            protected = protect(lib, upstream, name, threshold=THRESHOLD, recovery=RECOVERY,
                                redis_url=url)  # fmt: skip
            if lib == OURS:
                registry.get(name)
            else:
                _count_pybreaker_opens(protected.breaker, name, opened)
            barrier.wait()
            for _ in range(calls):
                try:
                    protected.func()
                except Exception:  # the upstream's error or a rejection
                    pass
            outbox.put(
                ("stampede", index, lib, round_, opened[name], reached[0], harness.outages())
            )
    events.flush(10.0)  # the opened events are stored before this process exits


def run(url: str, size: harness.Size) -> dict[str, Any]:
    """Every process makes ``stampede_calls`` calls at once; count opens and upstream calls."""
    from resilience.models import CircuitEvent

    libs = stampede_libs()
    rows = []
    rounds = size.rounds
    for processes in size.stampede:
        for round_ in range(rounds):  # policy rows first: workers must not race to create them
            set_policy(
                _name(processes, round_, OURS),
                failure_threshold=THRESHOLD,
                recovery_timeout=float(RECOVERY),
            )
        with Workers(
            _stampede_worker, processes, url, processes, rounds, size.stampede_calls
        ) as workers:
            for _round in range(rounds):
                for _lib in libs:
                    workers.sync()
                    messages = workers.collect()
                    _, _, lib, round_, *_ = messages[0]
                    rows.append(
                        {
                            "lib": lib,
                            "processes": processes,
                            "round": round_,
                            "opened": sum(m[4] for m in messages),
                            "upstream_calls": sum(m[5] for m in messages),
                            "calls": processes * size.stampede_calls,
                            "backend_outages": max(m[6] for m in messages),
                        }
                    )
        for row in rows:
            if row["lib"] == OURS and row["processes"] == processes:
                name = _name(processes, row["round"], OURS)
                opened = CircuitEvent.objects.filter(circuit=name, kind="opened")
                row["opened_events"] = opened.count()
                row["alerts_sent"] = opened.filter(alert_status="sent").count()
    return {"libs": libs, "threshold": THRESHOLD, "rounds": rounds, "rows": rows}
