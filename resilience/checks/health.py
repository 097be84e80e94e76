"""Checks of ``RESILIENCE["HEALTH"]``: the bearer token and the status of a degraded answer."""

from __future__ import annotations

import re
from typing import Any

from resilience.checks.keys import nested
from resilience.rules import Problem, number


def check_health(raw: dict[str, Any]) -> list[Problem]:
    """The token (without showing it: a secret) and ``CRITICAL_STATUS``."""
    health = nested(raw, "HEALTH")
    found = []
    token = health.get("TOKEN")
    hint = "Generate one with python -c 'import secrets; print(secrets.token_urlsafe())'."
    if isinstance(token, str) and re.search(r"[\s\x00-\x1f\x7f]", token):
        found.append(
            Problem(
                "HEALTH.TOKEN.whitespace",
                "HEALTH['TOKEN'] must not contain spaces or control characters (a bearer token "
                "is one word in the Authorization header).",
                hint,
            )
        )
    elif token is not None and (not isinstance(token, str) or len(token) < 16):
        found.append(
            Problem(
                "HEALTH.TOKEN",
                "HEALTH['TOKEN'] must be None or a string of 16+ characters (the value is not "
                "shown: it is a secret).",
                hint,
            )
        )
    if "CRITICAL_STATUS" in health:
        found += number(
            "HEALTH.CRITICAL_STATUS",
            "HEALTH['CRITICAL_STATUS']",
            health["CRITICAL_STATUS"],
            200,
            599,
            integer=True,
            hint="An HTTP status code; the default is 503.",
        )
    return found
