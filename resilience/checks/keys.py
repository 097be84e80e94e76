"""Checks of the shape of ``RESILIENCE``: unknown keys, the types of its parts, top-level values."""

from __future__ import annotations

from typing import Any

from resilience.conf import DEFAULTS, NESTED, ON_BACKEND_ERROR_CHOICES, POLICY_REFRESH_MAX_SECONDS
from resilience.rules import Problem, boolean, choice, dict_of, number

DOCS = "See docs/settings.md."


def nested(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """``raw[key]`` when it is a dict, else ``{}`` (its type is reported on its own)."""
    value = raw.get(key, {})
    return value if isinstance(value, dict) else {}


def check_unknown_keys(raw: dict[str, Any]) -> list[Problem]:
    """Keys of ``RESILIENCE`` and of its nested dicts that the app does not know."""
    found = []
    unknown = sorted(str(key) for key in set(raw) - set(DEFAULTS))
    if unknown:
        found.append(
            Problem(
                "unknown",
                f"Unknown RESILIENCE keys: {', '.join(unknown)}.",
                f"Valid keys: {', '.join(DEFAULTS)}.",
            )
        )
    for key in NESTED:
        extra = sorted(str(k) for k in set(nested(raw, key)) - set(DEFAULTS[key]))
        if extra:
            found.append(
                Problem(
                    "unknown.nested",
                    f"Unknown {key} keys: {', '.join(extra)}.",
                    f"Valid keys: {', '.join(DEFAULTS[key])}.",
                )
            )
    return found


def check_types(raw: dict[str, Any]) -> list[Problem]:
    """The nested dicts and ``OPTIONS`` are dicts; the flags are booleans."""
    found = []
    for key in (*NESTED, "OPTIONS"):
        if key in raw:
            found += dict_of(key, f"RESILIENCE[{key!r}]", raw[key], DOCS)
    for key in ("ENABLED", "CREATE_MISSING_POLICIES", "EXPOSE_CIRCUIT_NAME", "TRACING"):
        if key in raw:
            found += boolean(key, key, raw[key], f"The default is {DEFAULTS[key]}.")
    return found


def check_top_level_values(raw: dict[str, Any]) -> list[Problem]:
    """The refresh interval, the idle-circuit time and ``ON_BACKEND_ERROR``."""
    found = []
    if "POLICY_REFRESH_SECONDS" in raw:
        found += number(
            "POLICY_REFRESH_SECONDS",
            "POLICY_REFRESH_SECONDS",
            raw["POLICY_REFRESH_SECONDS"],
            0,
            POLICY_REFRESH_MAX_SECONDS,
            low_open=True,
            hint="Seconds; the default is 1.0.",
        )
    if "IDLE_CIRCUIT_SECONDS" in raw:
        found += number(
            "IDLE_CIRCUIT_SECONDS",
            "IDLE_CIRCUIT_SECONDS",
            raw["IDLE_CIRCUIT_SECONDS"],
            0,
            30 * 86_400,
            hint="Seconds a per-host HTTP circuit may stay unused before it is forgotten; "
            "0 keeps them for the life of the process. The default is 3600.",
        )
    if "ON_BACKEND_ERROR" in raw:
        found += choice(
            "ON_BACKEND_ERROR",
            "ON_BACKEND_ERROR",
            raw["ON_BACKEND_ERROR"],
            ON_BACKEND_ERROR_CHOICES,
            "'local' keeps per-process state while the backend is unreachable.",
        )
    return found
