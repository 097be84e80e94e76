"""Make exception text safe to store, log and e-mail: bounded, one line, secrets redacted."""

from __future__ import annotations

import re
from collections.abc import Iterable

ERROR_MAX_CHARS = 500
REDACTED = "[redacted]"

_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")  # \s covers \u2028/\u2029 too
_SECRETS = (
    # Authorization schemes: "Bearer abc.def", "Authorization: Basic dXNlcjpwdw==", "Token abc".
    (
        re.compile(r"\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.I),
        r"\1\2" + REDACTED,
    ),
    # Credentials in URLs: scheme://user:password@host -> scheme://user:[redacted]@host.
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.I), r"\1" + REDACTED + "@"),
    # key=value, key: value and "key": "value" for secret-looking keys.
    (
        re.compile(
            r"""(["']?\b[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|"""
            r"""access[_-]?key|private[_-]?key|signature|sig|auth|session|cookie|credentials?)"""
            r"""["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;'"}]+)""",
            re.I,
        ),
        r"\1" + REDACTED,
    ),
)


def one_line(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """``text`` with control characters and whitespace runs collapsed to one space, bounded."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact(text: str) -> str:
    """Replace bearer tokens, URL passwords and ``password=``-style values with ``[redacted]``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def describe_error(
    error: BaseException | None, limit: int = ERROR_MAX_CHARS, *, secrets: Iterable[str] = ()
) -> str:
    """``"module.Class: message"`` of an exception, sanitised and at most ``limit`` characters.

    Each of ``secrets`` (known passwords, e.g. the Redis backend's) is redacted wherever it
    appears, in addition to what ``redact`` recognises.
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
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return one_line(redact(text[: limit * 4]), limit)
