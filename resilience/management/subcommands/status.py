"""``manage.py resilience status [NAME ...] [--json]``: the state of every circuit, or of some."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from resilience.backends import get_backend
from resilience.management.subcommands.shared import PER_PROCESS_NOTE, check_known, write_json
from resilience.metrics import Overview, overview

COLUMNS = ("circuit", "state", "mode", "failures", "rate", "retry in", "in flight", "critical")


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    """Print the states; exit status 1 when the database or the backend could not be read."""
    view = _report(command, options["names"], options["json"])
    if not get_backend().shared_state:
        command.stderr.write(PER_PROCESS_NOTE)
    reached = {"database": view.database, "backend": not view.backend.get("degraded")}
    unreachable = [what for what, ok in reached.items() if not ok]
    if unreachable:  # exit status 1: the states printed are not the shared ones
        raise CommandError(
            f"The {' and the '.join(unreachable)} could not be read: the states above are "
            "not the shared ones (`manage.py check`, then docs/operations.md)."
        )


def _report(command: BaseCommand, names: list[str], as_json: bool) -> Overview:
    view = overview()
    check_known(names, view.circuits)
    circuits = {name: view.circuits[name] for name in names} if names else view.circuits
    report = {
        "status": "healthy" if view.healthy else "degraded",
        "database": view.database,
        "backend": view.backend,
        "circuits": circuits,
        "shared_state": get_backend().shared_state,
    }
    if as_json:
        write_json(command, report)
        return view
    backend = view.backend.get("backend", "?")
    degraded = " (degraded)" if view.backend.get("degraded") else ""
    command.stdout.write(f"Status: {report['status']}; backend: {backend}{degraded}")
    rows = [COLUMNS] + [_row(name, c) for name, c in sorted(circuits.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        command.stdout.write("  ".join(cells).rstrip())
    return view


def _row(name: str, circuit: dict[str, Any]) -> tuple[str, ...]:
    rate = circuit["failure_rate"]
    retry_after = circuit["retry_after"]
    return (
        name,
        circuit["state"],
        circuit["mode"],
        str(circuit["consecutive_failures"]),
        "-" if rate is None else f"{rate:.0f}%",
        f"{retry_after:.0f}s" if retry_after else "-",
        _in_flight(circuit["in_flight"], circuit["max_concurrent_calls"]),
        "yes" if circuit["critical"] else "no",
    )


def _in_flight(count: int | None, cap: int) -> str:
    """``"1/2"`` against the cap, ``"1"`` without one, ``"-"`` when calls are not counted."""
    if count is None:
        return "-"
    return f"{count}/{cap}" if cap else str(count)
