"""Checks of ``DEFAULT_POLICY`` and ``POLICIES``: names, known fields, values a row could hold."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from resilience.checks.keys import DOCS
from resilience.models import BreakerPolicy
from resilience.rules import Problem
from resilience.validators import validate_circuit_name


def _policy_values(label: str, values: Any) -> list[Problem]:
    """What is wrong with ``values`` as the fields of a policy row (``label`` names them)."""
    if not isinstance(values, dict):
        return [Problem("POLICY.type", f"{label} must be a dict of BreakerPolicy fields.", DOCS)]
    fields = {f.name for f in BreakerPolicy._meta.get_fields() if getattr(f, "editable", False)}
    unknown = sorted(str(key) for key in set(values) - fields - {"id"})
    if unknown:
        return [
            Problem(
                "POLICY.fields",
                f"{label} has unknown policy fields: {', '.join(unknown)}.",
                f"Valid fields: {', '.join(sorted(fields))}.",
            )
        ]
    policy = BreakerPolicy(name="check", **values)
    try:
        policy.clean_fields(exclude=["name"])
        policy.clean()
    except ValidationError as exc:
        details = "; ".join(
            f"{field}: {' '.join(str(m) for m in messages)}"
            for field, messages in exc.message_dict.items()
        )
        return [Problem("POLICY.values", f"{label} has invalid values: {details}", "Fix them.")]
    return []


def check_policies(raw: dict[str, Any]) -> list[Problem]:
    """``DEFAULT_POLICY`` and every entry of ``POLICIES``, as the row they would create."""
    found = []
    if "DEFAULT_POLICY" in raw:
        found += _policy_values("DEFAULT_POLICY", raw["DEFAULT_POLICY"])
    policies = raw.get("POLICIES", {})
    if not isinstance(policies, dict):
        hint = "e.g. {'payments-api': {'failure_threshold': 3}}."
        return [*found, Problem("POLICY.type", "POLICIES must be a dict of name -> values.", hint)]
    for name, values in policies.items():
        try:
            validate_circuit_name(name)
        except ValidationError:
            found.append(
                Problem(
                    "POLICY.name",
                    f"POLICIES has an invalid circuit name {str(name)[:100]!r}.",
                    "Letters, digits, '.', '_', ':' and '-'.",
                )
            )
            continue
        found += _policy_values(f"POLICIES[{name!r}]", values)
    return found
