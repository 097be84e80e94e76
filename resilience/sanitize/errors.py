"""Exception text made safe to store, log and e-mail: one line, bounded, secrets redacted."""

from __future__ import annotations

import re
from collections.abc import Iterable

from resilience.sanitize.rules import redact

ERROR_MAX_CHARS = 500

_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")  # \s covers \u2028/\u2029 too


def one_line(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """``text`` with control characters and whitespace runs collapsed to one space, bounded."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(
    error: BaseException | None, limit: int = ERROR_MAX_CHARS, *, secrets: Iterable[str] = ()
) -> str:
    """``"module.Class: message"`` of an exception, sanitised and at most ``limit`` characters.

    ``secrets``: strings known to be secret (a configured password), redacted wherever they are.
    """
    if error is None:
        return ""
    cls = type(error)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    try:
        message = str(error)
    except Exception:  # a broken __str__ must not break event recording
        message = "<unprintable message>"
    # Redact before cutting (a slice cannot hide the start of a secret), on a bounded prefix so a
    # megabyte-long message costs nothing.
    text = f"{name}: {message}" if message else name
    return one_line(redact(text[: limit * 4], secrets), limit)
