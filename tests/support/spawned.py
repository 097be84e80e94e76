"""Run spawned processes that each put one result on a queue; their errors fail the test."""

from __future__ import annotations

from typing import Any


def gather(procs: list[Any], results: Any, timeout: float) -> list[Any]:
    """Start ``procs``, take one result per process from ``results`` (``timeout`` s each), then
    join them (killing, by object, any that does not end). A result ``{"error": traceback}``
    fails the test with the first such traceback."""
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=timeout) for _ in procs]
    finally:
        stop(procs)
    errors = [o["error"] for o in outcomes if isinstance(o, dict) and "error" in o]
    assert not errors, errors[0]
    return outcomes


def stop(procs: list[Any]) -> None:
    """Join ``procs``, killing any still alive after 10 s."""
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
