"""Which names hold a secret (``is_sensitive``), which bare words look like one, and the marker
that replaces a secret."""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote

from django.core.exceptions import ImproperlyConfigured

from resilience.conf import settings as conf

REDACTED = "[redacted]"

# Sensitive as the last word of a name: ``api_key``, ``X-Amz-Signature``, ``refresh_token``.
SENSITIVE_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "jwt",
        "key",
        "otp",
        "pass",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "session",
        "sessionid",
        "sig",
        "signature",
        "token",
    }
)
# Sensitive anywhere in a name: ``password_hash``, ``secret_access_key_id``.
STRONG_WORDS = frozenset(
    {"apikey", "credential", "credentials", "passphrase", "passwd", "password", "secret"}
)
SENSITIVE_NAMES = frozenset({"jsessionid", "phpsessid", "sessionid"})
SENSITIVE_SUFFIXES = ("apikey", "password", "passwd", "secret", "signature", "token")
# A name ending so is an exception class (``KeyError: 'x'``, ``TokenExpiredError: ...``).
NOT_SENSITIVE_LAST = frozenset({"error", "errors", "exception", "warning"})
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PLAIN_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")


def _words(name: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", name).lower()) if w]


def _extra_names() -> frozenset[str]:
    try:
        names = conf.REDACT.get("NAMES") or ()
    except (ImproperlyConfigured, AttributeError):  # no Django settings, or a bad value
        return frozenset()
    return _compact_names(tuple(n for n in names if isinstance(n, str)))


@functools.lru_cache(maxsize=16)
def _compact_names(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset("".join(_words(name)) for name in names)


def is_sensitive(name: str) -> bool:
    """Whether a parameter, field or header called ``name`` holds a secret (see the module)."""
    words = _words(unquote(name))
    if not words or words[-1] in NOT_SENSITIVE_LAST:
        return False
    compact = "".join(words)
    return (
        words[-1] in SENSITIVE_WORDS
        or any(w in STRONG_WORDS for w in words)
        or compact in SENSITIVE_NAMES
        or compact.endswith(SENSITIVE_SUFFIXES)
        or compact in _extra_names()
    )


def looks_secret(value: str) -> bool:
    """A bare word that could be a secret: not a plain (English-like) word of 4 to 19 letters."""
    return len(value) >= 20 or (len(value) >= 4 and _PLAIN_WORD.fullmatch(value) is None)
