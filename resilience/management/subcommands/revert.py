"""``manage.py resilience revert NAME REVISION [--reason] [--actor] [--json]``: give a policy
the values of one of its revisions, as a new revision."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from resilience.management.subcommands import revisions
from resilience.management.subcommands.shared import actor, policy, write_json
from resilience.models import BreakerPolicy, RevisionSource


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    name, revision = options["names"][0], options["revision"]
    row, by = policy(name), actor(options["actor"])
    try:
        with BreakerPolicy.audit(source=RevisionSource.COMMAND):
            made = row.revert_to(revision, actor=by, reason=options["reason"])
    except ValidationError as exc:  # nothing was saved
        raise CommandError(f"Nothing was reverted: {_problems(exc)}") from None
    if options["json"]:
        write_json(command, {"circuit": name, "revision": revisions.as_json(made)})
        return
    command.stdout.write(
        command.style.SUCCESS(f"Reverted {name} to revision {revision}: new revision {made.pk}")
    )
    revisions.write_diff(command, made)


def _problems(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
        )
    return " ".join(exc.messages)
