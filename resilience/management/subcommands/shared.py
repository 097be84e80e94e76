"""What the subcommands share: the circuits, policies and users the command line names
(``CommandError`` when one is missing), and JSON output."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from resilience.models import BreakerPolicy

PER_PROCESS_NOTE = (
    "Note: the memory backend keeps circuit state in each process. These are the states of this "
    "command's own process, not those of the web or worker processes: see the running site's "
    "admin, or share state with resilience.backends.redis.RedisBackend."
)


def check_known(names: Iterable[str], known: Collection[str]) -> None:
    """``CommandError`` naming every one of ``names`` not in ``known``."""
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        raise unknown_circuits(unknown)


def unknown_circuits(names: list[str]) -> CommandError:
    listed = ", ".join(repr(name[:100]) for name in names)
    return CommandError(
        f"Unknown circuit(s): {listed}. `manage.py resilience status` lists the circuits."
    )


def policy(name: str) -> BreakerPolicy:
    """The policy row of circuit ``name``; ``CommandError`` when it has none."""
    row = BreakerPolicy.objects.filter(name=name).first()
    if row is None:
        raise unknown_circuits([name])
    return row


def actor(username: str | None) -> Any:
    """The user ``--actor`` names (None without one); ``CommandError`` when unknown."""
    if username is None:
        return None
    model = get_user_model()
    try:
        return model._default_manager.get_by_natural_key(username)
    except model.DoesNotExist:
        raise CommandError(f"Unknown user {username[:150]!r} for --actor.") from None


def write_json(command: BaseCommand, data: Any) -> None:
    command.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))
