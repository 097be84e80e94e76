"""URLs redacted by parsing them: the password (or a token user name), sensitive parameters."""

from __future__ import annotations

import re

from resilience.sanitize.names import REDACTED, is_sensitive, looks_secret

# What follows the "@" that ends a URL's user info: a host, an optional port, then the path.
_HOST_AFTER_AT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[\w.~%-]+)(?::\d*)?(?=[/?#),;.]|$)")


def _user_info_end(rest: str) -> int:
    """Index of the ``@`` ending the user info of ``rest`` (a URL after ``://``), or -1."""
    at = -1
    for index in (i for i, c in enumerate(rest) if c == "@"):
        if _HOST_AFTER_AT.match(rest, index + 1):
            at = index
    if at < 0:
        return -1
    info = rest[:at]
    if "/" not in info:
        return at
    # A "/" before the "@": a password with "/" in it (user:pa/ss@host), or a path holding an
    # "@" (host:8080/users/@bob, host/x@y). A port after the first ":" means the latter.
    user, colon, after = info.partition(":")
    if not colon or "/" in user or after.split("/", 1)[0].isdigit():
        return -1
    return at


def _redact_params(part: str) -> str:
    """``part`` (a query string or fragment) with the values of sensitive parameters redacted."""
    pairs = re.split(r"([&;])", part)
    for i in range(0, len(pairs), 2):
        name, eq, value = pairs[i].partition("=")
        if eq and value and is_sensitive(name):
            pairs[i] = f"{name}={REDACTED}"
    return "".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with its password (or token user name) and sensitive parameter values redacted."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = _user_info_end(rest)
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}:{REDACTED}{rest[at:]}"
        elif looks_secret(user) and len(user) >= 16:  # https://ghp_…@github.com
            rest = REDACTED + rest[at:]
    base, q, query = rest.partition("?")
    if q:
        query, h, fragment = query.partition("#")
    else:
        base, h, fragment = rest.partition("#")
    return f"{scheme}://{base}{q}{_redact_params(query)}{h}{_redact_params(fragment)}"
