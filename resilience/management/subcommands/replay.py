"""``manage.py resilience replay NAME [--hours H] [--set FIELD=VALUE ...] [--json]``: what if —
the circuit's recorded history replayed under changed policy values (nothing is changed)."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from resilience import whatif
from resilience.backends import get_backend
from resilience.exceptions import BackendError
from resilience.management.subcommands.shared import PER_PROCESS_NOTE, policy, write_json

MAX_HOURS = 168
REPLAY_ROWS = (
    ("openings", "opened"),
    ("time open (s)", "open_seconds"),
    ("calls refused", "rejected"),
    ("calls run", "calls"),
    ("failures among them", "failures"),
)


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    name = options["name"]
    hours = _hours(options["hours"])
    values = _values(options["values"])
    row = policy(name)
    try:
        proposed = whatif.with_values(row, values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}: {' '.join(_bounded(str(m)) for m in messages)}"
            for field, messages in exc.message_dict.items()
        )
        raise CommandError(f"--set: {problems}", returncode=2) from None
    try:
        result = whatif.preview(row, proposed, hours)
    except BackendError as exc:
        raise CommandError(f"The history of {name!r} could not be read: {exc}") from None
    if not get_backend().shared_state:
        command.stderr.write(PER_PROCESS_NOTE.replace("states", "histories"))
    if options["json"]:
        write_json(command, result.report)
    else:
        for line in replay_lines(result):
            command.stdout.write(line)


def _bounded(message: str, limit: int = 200) -> str:
    """A validation message as long as a terminal line or two: Django's messages quote the
    value given, which may be huge."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _hours(text: str) -> float:
    """``--hours``: a number above 0 and at most 7 days (the history kept)."""
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or not 0 < hours <= MAX_HOURS:
        raise CommandError(
            f"--hours {text[:50]!r}: give a number of hours above 0 and at most {MAX_HOURS} "
            "(7 days, the history kept).",
            returncode=2,
        )
    return hours


def _values(assignments: list[str]) -> dict[str, str]:
    """``--set FIELD=VALUE`` options as ``{field: text}`` (the model judges the values)."""
    values = {}
    for assignment in assignments:
        field, equals, text = assignment.partition("=")
        if not equals or not field.strip():
            raise CommandError(
                f"--set {assignment[:60]!r}: give FIELD=VALUE, e.g. failure_threshold=3.",
                returncode=2,
            )
        values[field.strip()] = text.strip()
    return values


def replay_lines(result: whatif.Preview) -> list[str]:
    """The text report of ``replay``: actual next to proposed, then what to know about it."""
    report = result.report
    actual, proposed = report["actual"], report["proposed"]
    changed = ", ".join(f"{k}={v}" for k, v in proposed["changed"].items()) or "no change"
    period = "no history"
    if result.start and result.end:
        period = (
            f"{result.start:%Y-%m-%d %H:%M:%S} to {result.end:%Y-%m-%d %H:%M:%S} UTC, "
            f"{result.bucket_seconds}-second buckets"
        )
    lines = [
        f"Replay of {report['circuit']!r} over the last {report['hours']} h ({period}).",
        f"Proposed: {changed}.",
        "",
        f"{'':22}{'actual':>10}{'proposed':>10}",
    ]
    for label, key in REPLAY_ROWS:
        lines.append(f"{label:22}{actual[key]:>10}{proposed[key]:>10}")
    lines.append("")
    if proposed["estimated"]:
        lines.append(
            f"{proposed['estimated']} of the calls run were refused in reality: their outcomes "
            "are estimated from the calls next to them."
        )
    if proposed["not_replayed"]:
        lines.append(f"Not replayed (no effect here): {', '.join(proposed['not_replayed'])}.")
    again = actual["replayed"]
    lines.append(
        f"The current policy replayed the same way: opened {again['opened']}, open "
        f"{again['open_seconds']} s, refused {again['rejected']} (how close a replay comes to "
        "what happened; docs/replay.md)."
    )
    return lines
