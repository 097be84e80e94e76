"""``ResolvedPolicy``: a ``BreakerPolicy`` row as the call path uses it, once per version."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from django.utils.module_loading import import_string

from resilience.engine import Policy
from resilience.validators import split_lines

logger = logging.getLogger("resilience")
ENGINE_FIELDS = tuple(f.name for f in fields(Policy) if f.init)


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """Everything a breaker needs to know about one circuit, resolved once per policy version."""

    name: str
    policy: Policy
    mode: str
    ignore: tuple[type[BaseException], ...] = ()
    record: tuple[type[BaseException], ...] = ()
    retry_attempts: int = 0
    retry_backoff_ms: int = 100
    retry_max_backoff_ms: int = 2000
    critical: bool = False
    pk: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> ResolvedPolicy:
        """From a saved or unsaved ``BreakerPolicy`` instance."""
        values = {name: getattr(row, name) for name in ENGINE_FIELDS}
        mode = row.mode
        # A maintenance window in force sets the mode, unless an operator chose one.
        if getattr(row, "window_mode", "") and mode == "enforced":
            mode = row.window_mode
        return cls(
            name=row.name,
            policy=Policy.from_mapping(values),
            mode=mode,
            ignore=_exception_types(row.ignore_exceptions),
            record=_exception_types(row.record_exceptions),
            retry_attempts=row.retry_attempts,
            retry_backoff_ms=row.retry_backoff_ms,
            retry_max_backoff_ms=row.retry_max_backoff_ms,
            critical=row.critical,
            pk=row.pk,
        )


def _exception_types(text: str) -> tuple[type[BaseException], ...]:
    found = []
    for path in split_lines(text):
        try:
            obj = import_string(path)
        except ImportError:
            logger.error("resilience: cannot import exception class %r; ignoring it", path[:200])
            continue
        if isinstance(obj, type) and issubclass(obj, BaseException):
            found.append(obj)
    return tuple(found)
