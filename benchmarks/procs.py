"""Worker processes for the multi-process figures: spawned, started together, reporting back."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections.abc import Callable
from typing import Any

# Generous: 16 processes importing Django on 2 cores take a while to reach the first barrier.
START_TIMEOUT = 120.0


def _entry(target: Callable[..., Any], index: int, barrier: Any, outbox: Any, args: tuple) -> None:
    from benchmarks import harness

    harness.setup_django()
    try:
        target(index, barrier, outbox, *args)
    except BaseException as exc:
        outbox.put(("error", index, f"{type(exc).__name__}: {exc}"[:500]))
        barrier.abort()
        raise


class Workers:
    """``n`` spawned processes running ``target(index, barrier, outbox, *args)``.

    ``barrier`` has ``n + 1`` parties: the main process joins every rendezvous with ``sync()``,
    so "go" is the same moment for every worker. Workers report through ``outbox``.
    Spawned (not forked): each worker sets Django up itself, with its own connections.
    """

    def __init__(self, target: Callable[..., Any], n: int, *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.n = n
        self.barrier = ctx.Barrier(n + 1)
        self.outbox = ctx.Queue()
        self.procs = [
            ctx.Process(target=_entry, args=(target, i, self.barrier, self.outbox, args))
            for i in range(n)
        ]

    def __enter__(self) -> Workers:
        for proc in self.procs:
            proc.start()
        return self

    def sync(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every worker reached its next rendezvous, then let all go at once."""
        try:
            self.barrier.wait(timeout)
        except Exception as exc:
            raise RuntimeError(f"a worker did not reach the barrier: {self._errors()}") from exc

    def get(self, timeout: float = START_TIMEOUT) -> Any:
        """The next message from any worker; a worker's error is raised here (RuntimeError),
        silence for ``timeout`` seconds as TimeoutError."""
        try:
            message = self.outbox.get(timeout=timeout)
        except queue_module.Empty:
            raise TimeoutError(f"no message from the workers in {timeout:.1f}s") from None
        if message[0] == "error":
            raise RuntimeError(f"worker {message[1]} failed: {message[2]}")
        return message

    def collect(self, timeout: float = START_TIMEOUT) -> list[Any]:
        """One message from each worker."""
        return [self.get(timeout) for _ in range(self.n)]

    def _errors(self) -> str:
        found = []
        while True:
            try:
                message = self.outbox.get_nowait()
            except queue_module.Empty:
                return "; ".join(found) or "no error reported"
            if message[0] == "error":
                found.append(f"worker {message[1]}: {message[2]}")

    def __exit__(self, exc_type: Any, *exc_info: object) -> None:
        if exc_type is not None:
            self.barrier.abort()  # workers waiting at a rendezvous give up instead of hanging
        for proc in self.procs:
            proc.join(30)
        for proc in self.procs:  # only our own children, by object
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        self.outbox.close()
