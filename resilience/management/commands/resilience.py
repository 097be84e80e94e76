"""``manage.py resilience status|reset|open|release|revisions|revert|drain|replay [--json]``
for operators."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from resilience import events, whatif
from resilience.backends import get_backend
from resilience.decorators import breaker
from resilience.exceptions import BackendError
from resilience.metrics import Overview, overview
from resilience.models import BreakerPolicy, PolicyRevision, RevisionSource
from resilience.policies import registry

# subcommand: (Breaker method, past tense for the output, help)
ACTIONS = {
    "reset": ("reset", "Reset", "Close the circuit and clear its counters everywhere."),
    "open": ("force_open", "Forced open", "Kill switch: reject every call until released."),
    "release": ("release", "Released", "Undo open: the policy's mode goes back to enforced."),
}
PER_PROCESS_NOTE = (
    "Note: the memory backend keeps circuit state in each process. These are the states of this "
    "command's own process, not those of the web or worker processes: see the running site's "
    "admin, or share state with resilience.backends.redis.RedisBackend."
)
COLUMNS = ("circuit", "state", "mode", "failures", "rate", "retry in", "in flight", "critical")


class Command(BaseCommand):
    help = (
        "Inspect and control circuits, replay their history. Exit status: 0 done, 1 error "
        "(unknown circuit or user, "
        "database or backend failure; for status: the database or the backend could not be "
        "read), 2 bad arguments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        status = sub.add_parser("status", help="State of every circuit (or of NAME ...).")
        status.add_argument("names", nargs="*", metavar="NAME")
        status.add_argument("--json", action="store_true", help="Machine-readable output.")
        for action, (_, _, help_text) in ACTIONS.items():
            cmd = sub.add_parser(action, help=help_text)
            cmd.add_argument("names", nargs="+", metavar="NAME")
            cmd.add_argument("--reason", default="", help="Why (kept in the event log).")
            cmd.add_argument("--actor", help="Username recorded as the actor in the audit trail.")
            cmd.add_argument("--json", action="store_true", help="Machine-readable output.")
            if action == "open":
                when = cmd.add_mutually_exclusive_group()
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
        revisions = sub.add_parser(
            "revisions", help="The saved changes of a policy, newest first, with their diff."
        )
        revisions.add_argument("names", nargs=1, metavar="NAME")
        revisions.add_argument("--limit", type=int, default=20, help="At most this many (20).")
        revisions.add_argument("--json", action="store_true", help="Machine-readable output.")
        revert = sub.add_parser(
            "revert", help="Give a policy the values of one of its revisions (a new revision)."
        )
        revert.add_argument("names", nargs=1, metavar="NAME")
        revert.add_argument("revision", type=int, metavar="REVISION", help="The revision id.")
        revert.add_argument("--reason", default="", help="Why (kept with the revision).")
        revert.add_argument("--actor", help="Username recorded as the actor in the audit trail.")
        revert.add_argument("--json", action="store_true", help="Machine-readable output.")
        drain = sub.add_parser(
            "drain", help="Store transitions still waiting in the backend, re-queue lost alerts."
        )
        drain.add_argument("--limit", type=int, default=None, help="At most this many items.")
        drain.add_argument("--json", action="store_true", help="Machine-readable output.")
        replay = sub.add_parser(
            "replay",
            help="What if: replay the circuit's recorded history under changed policy values "
            "and compare with what happened (nothing is changed).",
        )
        replay.add_argument("name", metavar="NAME")
        replay.add_argument(
            "--hours",
            default=str(whatif.DEFAULT_HOURS),
            help="How far back: hours, above 0 and at most 168 (default 1; over 6: 1-minute "
            "buckets).",
        )
        replay.add_argument(
            "--set",
            dest="values",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help="A policy field's value to try, e.g. --set failure_threshold=3 (repeatable).",
        )
        replay.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "status":
            self.status(options["names"], options["json"])
        elif action == "drain":
            self.drain(options["limit"], options["json"])
        elif action == "revisions":
            self.revisions(options["names"][0], options["limit"], options["json"])
        elif action == "revert":
            self.revert(options["names"][0], options)
        elif action == "replay":
            self.replay(options["name"], options["hours"], options["values"], options["json"])
        else:
            self.control(action, options)

    # --- subcommands ------------------------------------------------------------------------------

    def status(self, names: list[str], as_json: bool) -> None:
        view = self._status(names, as_json)
        if not get_backend().shared_state:
            self.stderr.write(PER_PROCESS_NOTE)
        reached = {"database": view.database, "backend": not view.backend.get("degraded")}
        unreachable = [what for what, ok in reached.items() if not ok]
        if unreachable:  # exit status 1: the states printed are not the shared ones
            raise CommandError(
                f"The {' and the '.join(unreachable)} could not be read: the states above are "
                "not the shared ones (`manage.py check`, then docs/operations.md)."
            )

    def _status(self, names: list[str], as_json: bool) -> Overview:
        view = overview()
        self._check_known(names, view.circuits)
        circuits = {name: view.circuits[name] for name in names} if names else view.circuits
        report = {
            "status": "healthy" if view.healthy else "degraded",
            "database": view.database,
            "backend": view.backend,
            "circuits": circuits,
            "shared_state": get_backend().shared_state,
        }
        if as_json:
            self._json(report)
            return view
        backend = view.backend.get("backend", "?")
        degraded = " (degraded)" if view.backend.get("degraded") else ""
        self.stdout.write(f"Status: {report['status']}; backend: {backend}{degraded}")
        rows = [COLUMNS] + [self._row(name, c) for name, c in sorted(circuits.items())]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())
        return view

    def control(self, action: str, options: dict[str, Any]) -> None:
        names = options["names"]
        known = set(BreakerPolicy.objects.filter(name__in=names).values_list("name", flat=True))
        self._check_known(names, known)
        actor = self._actor(options["actor"])
        method, verb, _ = ACTIONS[action]
        extra = {}
        if action == "open" and (
            options.get("until") is not None or options.get("for_") is not None
        ):
            extra["until"] = _until(options.get("until"), options.get("for_"))
        done = {}
        for name in dict.fromkeys(names):  # each once, in the order given
            try:
                with BreakerPolicy.audit(source=RevisionSource.COMMAND):  # open/release: revisions
                    done[name] = getattr(breaker(name), method)(
                        actor=actor, reason=options["reason"], **extra
                    )
            except ValueError as exc:  # an ``until`` that passed meanwhile
                raise CommandError(str(exc), returncode=2) from None
        if options["json"]:
            self._json({"action": action, "circuits": done})
            return
        until = f" until {extra['until'].isoformat()}" if extra else ""
        for name, snapshot in done.items():
            self.stdout.write(self.style.SUCCESS(f"{verb} {name}: now {snapshot['state']}{until}"))

    def revisions(self, name: str, limit: int, as_json: bool) -> None:
        if limit < 1:
            raise CommandError("--limit must be at least 1.", returncode=2)
        policy = self._policy(name)
        rows = list(policy.revisions.select_related("actor")[:limit])
        if as_json:
            self._json({"circuit": name, "revisions": [_revision(r) for r in rows]})
            return
        for revision in rows:
            by = revision.actor.get_username() if revision.actor else "-"
            head = f"#{revision.pk} v{revision.version} {revision.created_at:%Y-%m-%d %H:%M:%S}"
            self.stdout.write(f"{head} {revision.source} by {by}: {revision.reason or '-'}")
            for label, before, after in revision.diff():
                self.stdout.write(f"    {label}: {before} → {after}")

    def revert(self, name: str, options: dict[str, Any]) -> None:
        policy = self._policy(name)
        actor = self._actor(options["actor"])
        try:
            with BreakerPolicy.audit(source=RevisionSource.COMMAND):
                made = policy.revert_to(options["revision"], actor=actor, reason=options["reason"])
        except ValidationError as exc:  # nothing was saved
            raise CommandError(f"Nothing was reverted: {_problems(exc)}") from None
        if options["json"]:
            self._json({"circuit": name, "revision": _revision(made)})
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Reverted {name} to revision {options['revision']}: new revision {made.pk}"
            )
        )
        for label, before, after in made.diff():
            self.stdout.write(f"    {label}: {before} → {after}")

    def drain(self, limit: int | None, as_json: bool) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        count = events.drain(limit)
        if as_json:
            self._json({"drained": count})
        else:
            self.stdout.write(f"Drained {count} event(s) and alert(s).")

    def replay(self, name: str, hours_text: str, assignments: list[str], as_json: bool) -> None:
        hours = _hours(hours_text)
        values = _values(assignments)
        row = BreakerPolicy.objects.filter(name=name).first()
        if row is None:
            self._check_known([name], ())  # raises: unknown circuit
            return
        try:
            proposed = whatif.with_values(row, values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(str(m) for m in messages)}"
                for field, messages in exc.message_dict.items()
            )
            raise CommandError(f"--set: {problems}", returncode=2) from None
        try:
            result = whatif.preview(row, proposed, hours)
        except BackendError as exc:
            raise CommandError(f"The history of {name!r} could not be read: {exc}") from None
        if not get_backend().shared_state:
            self.stderr.write(PER_PROCESS_NOTE.replace("states", "histories"))
        if as_json:
            self._json(result.report)
        else:
            for line in replay_lines(result):
                self.stdout.write(line)

    # --- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _check_known(names: list[str], known: Any) -> None:
        unknown = [name for name in dict.fromkeys(names) if name not in known]
        if unknown:
            raise _unknown(unknown)

    def _policy(self, name: str) -> BreakerPolicy:
        policy = BreakerPolicy.objects.filter(name=name).first()
        if policy is None:
            raise _unknown([name])
        return policy

    @staticmethod
    def _actor(username: str | None) -> Any:
        if username is None:
            return None
        from django.contrib.auth import get_user_model

        model = get_user_model()
        try:
            return model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            raise CommandError(f"Unknown user {username[:150]!r} for --actor.") from None

    @staticmethod
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

    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))


def _unknown(names: list[str]) -> CommandError:
    listed = ", ".join(repr(name[:100]) for name in names)
    return CommandError(
        f"Unknown circuit(s): {listed}. `manage.py resilience status` lists the circuits."
    )


def _revision(revision: PolicyRevision) -> dict[str, Any]:
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


def _problems(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def _in_flight(count: int | None, cap: int) -> str:
    """``"1/2"`` against the cap, ``"1"`` without one, ``"-"`` when calls are not counted."""
    if count is None:
        return "-"
    return f"{count}/{cap}" if cap else str(count)


MAX_HOURS = 168


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


REPLAY_ROWS = (
    ("openings", "opened"),
    ("time open (s)", "open_seconds"),
    ("calls refused", "rejected"),
    ("calls run", "calls"),
    ("failures among them", "failures"),
)


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


DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


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
