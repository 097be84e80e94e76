"""Checks of ``RESILIENCE["REDACT"]``: the extra names and patterns of secrets to hide."""

from __future__ import annotations

from typing import Any

from resilience.checks.keys import nested
from resilience.rules import Problem, list_of_strings, show
from resilience.sanitize import compile_patterns


def _pattern_problems(patterns: list[str]) -> list[Problem]:
    compiled = {p.pattern: p for p in compile_patterns(tuple(patterns))}
    invalid = [p for p in patterns if p not in compiled]
    empty = [p for p in patterns if p in compiled and compiled[p].fullmatch("")]
    found = []
    if invalid:
        found.append(
            Problem(
                "REDACT.PATTERNS.invalid",
                f"REDACT['PATTERNS'] has patterns that do not compile: "
                f"{', '.join(show(p) for p in invalid[:5])}.",
                "Python regular expressions (the re module).",
            )
        )
    if empty:
        found.append(
            Problem(
                "REDACT.PATTERNS.empty",
                f"REDACT['PATTERNS'] has patterns that match the empty string: "
                f"{', '.join(show(p) for p in empty[:5])}.",
                "Such a pattern redacts nothing useful; make it match at least one character.",
            )
        )
    return found


def check_redact(raw: dict[str, Any]) -> list[Problem]:
    """``NAMES`` is a list of strings; every one of ``PATTERNS`` compiles and matches something."""
    redact_settings = nested(raw, "REDACT")
    found = []
    if "NAMES" in redact_settings:
        found += list_of_strings(
            "REDACT.NAMES",
            "REDACT['NAMES']",
            redact_settings["NAMES"],
            "e.g. ['pin', 'x-tenant-key'].",
        )
    if "PATTERNS" in redact_settings:
        patterns = redact_settings["PATTERNS"]
        hint = "e.g. [r'tenant=(?P<secret>\\w+)']."
        bad_type = list_of_strings("REDACT.PATTERNS", "REDACT['PATTERNS']", patterns, hint)
        found += bad_type or _pattern_problems(list(patterns))
    return found
