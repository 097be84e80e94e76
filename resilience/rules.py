"""Value rules shared by the system checks and the backends: each failure is one ``Problem``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one setting or option.

    ``code`` names the problem (``"OPTIONS.socket_timeout"``); ``resilience.checks`` gives each
    code its own check id. ``warning``: reported as a warning, the value still works.
    """

    code: str
    message: str
    hint: str
    warning: bool = False


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` bounded, for a message (a setting may be huge or hostile)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_number(value: Any) -> bool:
    """An int or float (not a bool, not a string), finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def number(
    code: str,
    label: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    integer: bool = False,
    hint: str,
) -> list[Problem]:
    """``value`` is a finite number (an int if ``integer``) in ``[low, high]`` (``(low, high]``)."""
    kind = "an integer" if integer else "a number"
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    ok = is_number(value) and (isinstance(value, int) or not integer)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if ok:
        return []
    return [Problem(code, f"{label} must be {kind} in {interval}, not {show(value)}.", hint)]


def boolean(code: str, label: str, value: Any, hint: str) -> list[Problem]:
    if isinstance(value, bool):
        return []
    return [Problem(code, f"{label} must be True or False, not {show(value)}.", hint)]


def choice(code: str, label: str, value: Any, choices: Iterable[str], hint: str) -> list[Problem]:
    choices = tuple(choices)
    if isinstance(value, str) and value in choices:
        return []
    allowed = ", ".join(repr(c) for c in choices)
    return [Problem(code, f"{label} must be one of {allowed}, not {show(value)}.", hint)]


def dict_of(code: str, label: str, value: Any, hint: str) -> list[Problem]:
    if isinstance(value, dict):
        return []
    return [Problem(code, f"{label} must be a dict, not {show(value)}.", hint)]


def list_of_strings(code: str, label: str, value: Any, hint: str) -> list[Problem]:
    if isinstance(value, list | tuple) and all(isinstance(v, str) and v.strip() for v in value):
        return []
    return [Problem(code, f"{label} must be a list of non-empty strings, not {show(value)}.", hint)]
