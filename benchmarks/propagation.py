"""How long an admin action takes to be in force in every worker process."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from benchmarks import harness
from benchmarks.inprocess import Boom, fail, noop
from benchmarks.peers import set_policy
from benchmarks.procs import Workers

CIRCUIT = "propagation"
POLL_SECONDS = 0.005  # how often a worker makes a protected call
WAIT_SECONDS = 10.0  # give up on an action after this long (reported as not applied)
ADMITTED, REJECTED = "admitted", "rejected"
# (action, the state every worker must reach)
ACTIONS = (("force_open", REJECTED), ("release", ADMITTED), ("trip", REJECTED), ("reset", ADMITTED))


def _worker(index: int, barrier: Any, outbox: Any, stop: Any) -> None:
    from resilience import CircuitOpenError, circuit_breaker

    func = circuit_breaker(CIRCUIT)(noop)
    barrier.wait()
    status = None
    while not stop.is_set():
        try:
            func()
            now = ADMITTED
        except CircuitOpenError:
            now = REJECTED
        if now != status:
            status = now
            outbox.put(("status", index, now, time.time()))
        time.sleep(POLL_SECONDS)


class _Statuses:
    """The last status each worker reported, and when."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.last: dict[int, tuple[str, float]] = {}

    def wait_all(self, expected: str, since: float) -> float | None:
        """Seconds from ``since`` until every worker reported ``expected``; None on timeout."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not self._all(expected, since):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                _, index, status, at = self.workers.get(timeout=left)
            except TimeoutError:
                return None
            self.last[index] = (status, at)
        return max(at for _, at in self.last.values()) - since if self.last else None

    def _all(self, expected: str, since: float) -> bool:
        return len(self.last) == self.workers.n and all(
            status == expected and at >= since for status, at in self.last.values()
        )


def _fill(count: int) -> None:
    from resilience.models import BreakerPolicy

    BreakerPolicy.objects.bulk_create(
        [BreakerPolicy(name=f"{CIRCUIT}-filler-{i:05d}") for i in range(count)], batch_size=500
    )


def run(size: harness.Size) -> dict[str, Any]:
    """Force open, release, trip and reset a circuit while N workers call it (Redis backend);
    first with its row alone in the table, then among ``size.filler`` other policies."""
    from resilience.conf import settings as conf
    from resilience.models import BreakerPolicy

    harness.keep_only_policies(CIRCUIT)
    set_policy(CIRCUIT, failure_threshold=1, recovery_timeout=3600.0, mode="enforced")
    rows = _measure(size, size.workers)
    if size.filler:
        _fill(size.filler)
        rows += _measure(size, size.workers[-1:])
        BreakerPolicy.objects.filter(name__startswith=f"{CIRCUIT}-filler-").delete()
    return {
        "refresh_seconds": float(conf.POLICY_REFRESH_SECONDS),
        "poll_seconds": POLL_SECONDS,
        "rows": rows,
    }


def _measure(size: harness.Size, worker_counts: tuple[int, ...]) -> list[dict[str, Any]]:
    from resilience import breaker, circuit_breaker
    from resilience.models import BreakerPolicy

    policies = BreakerPolicy.objects.count()
    failing = circuit_breaker(CIRCUIT)(fail)
    rows = []
    for count in worker_counts:
        stop = multiprocessing.get_context("spawn").Event()
        with Workers(_worker, count, stop) as workers:
            workers.sync()
            statuses = _Statuses(workers)
            if statuses.wait_all(ADMITTED, 0.0) is None:
                raise RuntimeError("the workers never made an admitted call")
            # Round -1 is not recorded: a freshly started worker's first policy refresh loads
            # the whole table, and the figure is about processes that are already running.
            for round_ in range(-1, size.rounds):
                for action, expected in ACTIONS:
                    since = time.time()
                    if action == "trip":
                        try:
                            failing()
                        except Boom:
                            pass
                    else:
                        getattr(breaker(CIRCUIT), action)(reason="benchmark")
                    seconds = statuses.wait_all(expected, since)
                    if round_ >= 0:
                        rows.append(
                            {
                                "policies": policies,
                                "workers": count,
                                "round": round_,
                                "action": action,
                                "seconds": seconds,
                            }
                        )
            stop.set()
    return rows
