"""``manage.py resilience revisions NAME [--limit N] [--json]``: a policy's saved changes,
newest first, with their diff."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from resilience.management.subcommands.shared import policy, write_json
from resilience.models import PolicyRevision


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    name, limit = options["names"][0], options["limit"]
    if limit < 1:
        raise CommandError("--limit must be at least 1.", returncode=2)
    rows = list(policy(name).revisions.select_related("actor")[:limit])
    if options["json"]:
        write_json(command, {"circuit": name, "revisions": [as_json(r) for r in rows]})
        return
    for revision in rows:
        by = revision.actor.get_username() if revision.actor else "-"
        head = f"#{revision.pk} v{revision.version} {revision.created_at:%Y-%m-%d %H:%M:%S}"
        command.stdout.write(f"{head} {revision.source} by {by}: {revision.reason or '-'}")
        write_diff(command, revision)


def write_diff(command: BaseCommand, revision: PolicyRevision) -> None:
    for label, before, after in revision.diff():
        command.stdout.write(f"    {label}: {before} → {after}")


def as_json(revision: PolicyRevision) -> dict[str, Any]:
    """``revision`` as the ``--json`` output shows it (also ``revert``'s)."""
    return {
        "id": revision.pk,
        "version": revision.version,
        "created_at": revision.created_at.isoformat(),
        "source": revision.source,
        "actor": revision.actor.get_username() if revision.actor else None,
        "reason": revision.reason,
        "changes": revision.changes,
        "reverted_from": revision.reverted_from_id,
    }
