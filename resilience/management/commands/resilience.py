"""``manage.py resilience status|reset|open|release|revisions|revert|drain|replay [--json]``
for operators: the command line is parsed here; each subcommand's code is its module in
``resilience.management.subcommands``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from resilience import whatif
from resilience.management.subcommands import control, drain, replay, revert, revisions, status

# subcommand -> the function that runs it (control: reset, open and release)
RUN = {
    "status": status.run,
    **dict.fromkeys(control.ACTIONS, control.run),
    "revisions": revisions.run,
    "revert": revert.run,
    "drain": drain.run,
    "replay": replay.run,
}


class Command(BaseCommand):
    help = (
        "Inspect and control circuits, replay their history. Exit status: 0 done, 1 error "
        "(unknown circuit or user, "
        "database or backend failure; for status: the database or the backend could not be "
        "read), 2 bad arguments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        _status_arguments(sub.add_parser("status", help="State of every circuit (or of NAME ...)."))
        for action, (_, _, help_text) in control.ACTIONS.items():
            _control_arguments(sub.add_parser(action, help=help_text), action)
        _revisions_arguments(
            sub.add_parser(
                "revisions", help="The saved changes of a policy, newest first, with their diff."
            )
        )
        _revert_arguments(
            sub.add_parser(
                "revert", help="Give a policy the values of one of its revisions (a new revision)."
            )
        )
        _drain_arguments(
            sub.add_parser(
                "drain",
                help="Store transitions still waiting in the backend, re-queue lost alerts.",
            )
        )
        _replay_arguments(
            sub.add_parser(
                "replay",
                help="What if: replay the circuit's recorded history under changed policy values "
                "and compare with what happened (nothing is changed).",
            )
        )

    def handle(self, *args: Any, **options: Any) -> None:
        RUN[options["action"]](self, options)


def _json_flag(parser: CommandParser) -> None:
    parser.add_argument("--json", action="store_true", help="Machine-readable output.")


def _status_arguments(parser: CommandParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME")
    _json_flag(parser)


def _control_arguments(parser: CommandParser, action: str) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("--reason", default="", help="Why (kept in the event log).")
    parser.add_argument("--actor", help="Username recorded as the actor in the audit trail.")
    _json_flag(parser)
    if action == "open":
        when = parser.add_mutually_exclusive_group()
        when.add_argument(
            "--until",
            help="Release by itself at this time: ISO 8601, e.g. 2026-12-06T18:00+01:00 "
            "(without an offset: in TIME_ZONE).",
        )
        when.add_argument(
            "--for",
            dest="for_",
            metavar="DURATION",
            help="Release by itself after this long: 90s, 15m, 1h, 2h30m, 1d.",
        )


def _revisions_arguments(parser: CommandParser) -> None:
    parser.add_argument("names", nargs=1, metavar="NAME")
    parser.add_argument("--limit", type=int, default=20, help="At most this many (20).")
    _json_flag(parser)


def _revert_arguments(parser: CommandParser) -> None:
    parser.add_argument("names", nargs=1, metavar="NAME")
    parser.add_argument("revision", type=int, metavar="REVISION", help="The revision id.")
    parser.add_argument("--reason", default="", help="Why (kept with the revision).")
    parser.add_argument("--actor", help="Username recorded as the actor in the audit trail.")
    _json_flag(parser)


def _drain_arguments(parser: CommandParser) -> None:
    parser.add_argument("--limit", type=int, default=None, help="At most this many items.")
    _json_flag(parser)


def _replay_arguments(parser: CommandParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--hours",
        default=str(whatif.DEFAULT_HOURS),
        help="How far back: hours, above 0 and at most 168 (default 1; over 6: 1-minute buckets).",
    )
    parser.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="A policy field's value to try, e.g. --set failure_threshold=3 (repeatable).",
    )
    _json_flag(parser)
