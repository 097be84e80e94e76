"""What numbers a policy may hold: the range of each field and the message for a bad value."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.utils.functional import Promise

DAY = 86_400
HOUR_MS = 3_600_000

# (field, minimum, maximum): used by the validators, the CheckConstraints and the settings checks.
BOUNDS: dict[str, tuple[float, float]] = {
    "failure_threshold": (0, 1_000_000),
    "failure_rate_threshold": (0, 100),
    "window_seconds": (1, DAY),
    "minimum_calls": (1, 1_000_000),
    "slow_call_ms": (0, HOUR_MS),
    "max_concurrent_calls": (0, 100_000),
    "call_timeout_ms": (0, HOUR_MS),
    "recovery_timeout": (0.001, DAY),
    "backoff_multiplier": (1.0, 100.0),
    "max_recovery_timeout": (0.001, 7 * DAY),
    "half_open_max_calls": (1, 1000),
    "success_threshold": (1, 1000),
    "retry_attempts": (0, 10),
    "retry_backoff_ms": (0, HOUR_MS),
    "retry_max_backoff_ms": (0, HOUR_MS),
    "alert_cooldown_seconds": (0, 7 * DAY),
}


def bounded(field: str) -> list:
    """The validators keeping ``field`` within its ``BOUNDS``."""
    low, high = BOUNDS[field]
    return [MinValueValidator(low), MaxValueValidator(high)]


def number_problem(
    field: models.IntegerField | models.FloatField, value: Any
) -> Sequence[str | Promise]:
    """The messages for ``value`` in number field ``field`` (none when Django's own
    ``clean_fields`` may judge it: also a missing value, which Django reports itself)."""
    if value is None:
        return []
    if isinstance(value, bool):
        return [_("Enter a number, not %(value)s.") % {"value": value}]
    if (
        isinstance(field, models.IntegerField)
        and isinstance(value, float)
        and math.isfinite(value)
        and not value.is_integer()
    ):
        return [_("Enter a whole number, not %(value)s.") % {"value": value}]
    try:
        if value in field.empty_values:  # "" or [] is never a number (forms send None)
            raise TypeError
        field.to_python(value)
    except ValidationError as exc:
        return exc.messages
    except (OverflowError, TypeError, ValueError):
        return [_("Enter a finite number within the allowed range.")]
    return []
