"""``manage.py resilience drain [--limit N] [--json]``: store the transitions still waiting in
the backend and re-queue lost alerts (``events.drain``, also a Celery beat task)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from resilience import events
from resilience.management.subcommands.shared import write_json


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    limit = options["limit"]
    if limit is not None and limit < 1:
        raise CommandError("--limit must be at least 1.")
    count = events.drain(limit)
    if options["json"]:
        write_json(command, {"drained": count})
    else:
        command.stdout.write(f"Drained {count} event(s) and alert(s).")
