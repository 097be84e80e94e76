"""``manage.py resilience reset|open|release NAME ... [--reason] [--actor] [--json]``, and
``open --until TIME`` / ``--for DURATION``: a kill switch that releases itself."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from resilience.decorators import breaker
from resilience.management.subcommands.shared import actor, check_known, write_json
from resilience.models import BreakerPolicy, RevisionSource
from resilience.policies import registry

# subcommand: (Breaker method, past tense for the output, help)
ACTIONS = {
    "reset": ("reset", "Reset", "Close the circuit and clear its counters everywhere."),
    "open": ("force_open", "Forced open", "Kill switch: reject every call until released."),
    "release": ("release", "Released", "Undo open: the policy's mode goes back to enforced."),
}
DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    """Apply ``options["action"]`` to each circuit named, once each, in the order given."""
    action, names = options["action"], options["names"]
    known = set(BreakerPolicy.objects.filter(name__in=names).values_list("name", flat=True))
    check_known(names, known)
    by = actor(options["actor"])
    method, verb, _ = ACTIONS[action]
    extra = {}
    if action == "open" and (options.get("until") is not None or options.get("for_") is not None):
        extra["until"] = _until(options.get("until"), options.get("for_"))
    done = {}
    for name in dict.fromkeys(names):  # each once, in the order given
        try:
            with BreakerPolicy.audit(source=RevisionSource.COMMAND):  # open/release: revisions
                done[name] = getattr(breaker(name), method)(
                    actor=by, reason=options["reason"], **extra
                )
        except ValueError as exc:  # an ``until`` that passed meanwhile
            raise CommandError(str(exc), returncode=2) from None
    if options["json"]:
        write_json(command, {"action": action, "circuits": done})
        return
    until = f" until {extra['until'].isoformat()}" if extra else ""
    for name, snapshot in done.items():
        command.stdout.write(
            command.style.SUCCESS(f"{verb} {name}: now {snapshot['state']}{until}")
        )


def _until(text: str | None, duration: str | None) -> datetime:
    """``--until`` (ISO 8601) or now + ``--for``; CommandError (exit status 2) when invalid."""
    if duration is not None:
        match = DURATION.fullmatch(duration.strip().lower())
        if not match or not any(match.groups()):
            raise CommandError(
                f"--for {duration[:50]!r}: give a duration like 90s, 15m, 1h, 2h30m or 1d.",
                returncode=2,
            )
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        return registry.now() + span
    value = parse_datetime(str(text).strip())
    if value is None:
        raise CommandError(
            f"--until {str(text)[:50]!r}: give an ISO 8601 time, e.g. 2026-12-06T18:00+01:00.",
            returncode=2,
        )
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value <= registry.now():
        raise CommandError(f"--until {value.isoformat()} is not in the future.", returncode=2)
    return value
