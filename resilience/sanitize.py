"""Make exception text safe to store, log and e-mail: bounded, one line, secrets redacted.

What is redacted (docs/settings.md, "Secret redaction", says the same for users):

- URLs are parsed, not pattern-matched: the password of ``scheme://user:password@host`` (even
  with ``@``, ``/`` or ``:`` in it), a long token used as the user name, and the value of every
  query or fragment parameter with a sensitive name (``?api_key=…``, ``#access_token=…``).
- ``Authorization`` / ``Proxy-Authorization`` headers of any scheme (``Basic``, ``Bearer``,
  ``Token``, ``ApiKey``, ``Digest``, ``AWS4-HMAC-SHA256``, …) in every notation (``Name: value``,
  ``'Name': 'value'``, ``name=value``): the scheme stays, the credentials go.
- A credential after a scheme word anywhere (``Bearer eyJ…``, ``Token 9f8e…``).
- Credentials recognisable by their form (``KNOWN_TOKENS``: Stripe ``sk_live_…``, GitHub
  ``ghp_…``, Slack ``xoxb-…``, AWS ``AKIA…``, Google ``AIza…``, JWTs, PEM private keys): the
  prefix stays, the rest goes.
- The value of a sensitive name in free text: ``password=…``, ``"client_secret": "…"``,
  ``secret: …``, ``api_key=…``, and ``password hunter2`` (a bare word after the name only when it
  looks like a secret: digits or mixed case, not an English word).
- Anything matched by ``RESILIENCE["REDACT"]["PATTERNS"]``; names listed in
  ``RESILIENCE["REDACT"]["NAMES"]`` are sensitive too.

A name is sensitive when, split into words (``_``, ``-``, ``.``, camelCase), its last word is in
``SENSITIVE_WORDS`` or any word in ``STRONG_WORDS``, or when its letters and digits alone are in
``SENSITIVE_NAMES`` or end with one of ``SENSITIVE_SUFFIXES``; never when its last word is
``Error``/``Exception``/``Warning`` (an exception class). ``X-Api-Key``, ``accessToken``,
``DB_PASSWORD``, ``X-Amz-Signature``, ``session_id`` are sensitive; ``author``, ``monkey``,
``status_code``, ``token_type``, ``KeyError`` are not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from django.core.exceptions import ImproperlyConfigured

from resilience.conf import settings as conf

ERROR_MAX_CHARS = 500
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
AUTH_SCHEMES = ("apikey", "api-key", "basic", "bearer", "digest", "negotiate", "ntlm", "token")

_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")  # \s covers \u2028/\u2029 too
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PLAIN_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
# A URL: scheme://, then anything up to whitespace or a quote/angle bracket around it.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>`]+", re.I)
# What follows the "@" that ends a URL's user info: a host, an optional port, then the path.
_HOST_AFTER_AT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[\w.~%-]+)(?::\d*)?(?=[/?#),;.]|$)")
_AUTH_HEADER = re.compile(
    r"""(?P<name>\b(?:proxy[-_])?authorization)(?P<q1>["']?)(?P<sep>\s*[:=]\s*)"""
    r"""(?:(?P<q2>["'])(?P<quoted>(?:(?!(?P=q2))[^\r\n])*)(?P=q2)"""
    r"""|(?P<digest>digest[ \t]+)[^\r\n]*"""
    r"""|(?P<scheme>[A-Za-z][\w.-]*[ \t]+)?(?P<bare>[^\s,;'"]+))""",
    re.I,
)
_SCHEME_CREDENTIAL = re.compile(
    r"\b(?P<scheme>" + "|".join(AUTH_SCHEMES) + r")(?P<space>[ \t]+)"
    r"(?P<credential>(?<=digest[ \t])\w+=[^\r\n]*|[\w.~+/=-]{8,})",
    re.I,
)
# Credentials recognisable by their form wherever they are: the prefix stays (it says which kind
# of key leaked), the rest goes. Stripe, GitHub, GitLab, Slack, AWS access key ids, Google API
# keys, JSON Web Tokens, PEM private keys.
KNOWN_TOKENS = re.compile(
    r"\b(?P<prefix>(?:sk|rk)_(?:live|test)_|whsec_|gh[pousr]_|github_pat_|glpat-|xox[abpors]-"
    r"|AKIA|ASIA|AIza|eyJ)(?P<secret>[\w-]{8,}(?:\.[\w-]+){0,2})"
    r"|(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)
# name, optional closing quote, separator; the value is captured in a look-ahead so that a
# value that is not redacted can still be the name of the next match.
_ASSIGNMENT = re.compile(
    r"""(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*)["']?(?P<sep>\s*[=:]\s*|[ \t]+)"""
    r"""(?=(?P<value>"[^"\r\n]*"|'[^'\r\n]*'|[^\s'"<>]+))"""
)


def one_line(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """``text`` with control characters and whitespace runs collapsed to one space, bounded."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# --- URLs ----------------------------------------------------------------------------------------


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


# --- the rules, in order ---------------------------------------------------------------------


def _urls(text: str) -> str:
    return _URL.sub(lambda m: redact_url(m.group()), text)


def _authorization_headers(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        head = m.group("name") + m.group("q1") + m.group("sep")
        if m.group("q2") is not None:
            scheme, space, credentials = m.group("quoted").partition(" ")
            kept = scheme + space if credentials else ""
            return f"{head}{m.group('q2')}{kept}{REDACTED}{m.group('q2')}"
        return head + (m.group("digest") or m.group("scheme") or "") + REDACTED

    return _AUTH_HEADER.sub(replace, text)


def _scheme_credentials(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        if not looks_secret(m.group("credential")):
            return m.group()
        return m.group("scheme") + m.group("space") + REDACTED

    return _SCHEME_CREDENTIAL.sub(replace, text)


def _value_length(text: str, m: re.Match[str]) -> int:
    """How much of the bare value after a sensitive name is the secret."""
    value, sep = m.group("value"), m.group("sep").strip()
    if value[0] in "\"'":
        return len(value)
    if sep == "=":
        # In a query string ("?api_key=…&amount=5") "&" ends the value; elsewhere (a libpq DSN,
        # "password=Tr0ub4dor&3") it may be part of it, but "," and ";" end an argument list.
        in_query = m.start() > 0 and text[m.start() - 1] in "?&;"
        value = re.split(r"[&#]" if in_query else r"[,;]", value, maxsplit=1)[0]
    closing = ")]}" if sep else ",;:.)]}"
    return len(value.rstrip(closing)) or len(value)


def _known_tokens(text: str) -> str:
    return KNOWN_TOKENS.sub(lambda m: (m.group("prefix") or m.group("pem")) + REDACTED, text)


def _assignments(text: str) -> str:
    spans: list[tuple[int, int]] = []
    for m in _ASSIGNMENT.finditer(text):
        value, name = m.group("value"), m.group("name")
        if value.startswith(REDACTED) or (spans and m.start("value") < spans[-1][1]):
            continue
        if name.lower().replace("_", "-") in ("authorization", "proxy-authorization"):
            continue  # done by _authorization_headers, which keeps the scheme
        explicit = m.group("sep").strip() or value[0] in "\"'"
        length = _value_length(text, m)
        # After a bare space only something that looks like a secret, not "Key (email)=(…)",
        # "Key provided:" or "password authentication failed".
        bare_secret = value[0].isalnum() and looks_secret(value[:length])
        if (explicit or bare_secret) and is_sensitive(name):
            spans.append((m.start("value"), m.start("value") + length))
    for start, end in reversed(spans):
        text = text[:start] + REDACTED + text[end:]
    return text


@functools.lru_cache(maxsize=16)
def compile_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """The extra patterns that compile (``manage.py check`` reports the others)."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except (re.error, TypeError):
            continue
    return tuple(compiled)


def _extra_patterns(text: str) -> str:
    try:
        patterns = conf.REDACT.get("PATTERNS") or ()
    except (ImproperlyConfigured, AttributeError):
        return text
    for pattern in compile_patterns(tuple(p for p in patterns if isinstance(p, str))):
        group = "secret" if "secret" in pattern.groupindex else 0

        def replace(m: re.Match[str], group: str | int = group) -> str:
            start, end = m.span(group)
            if start == end:  # a pattern that matches nothing must not spray markers
                return m.group()
            return m.group()[: start - m.start()] + REDACTED + m.group()[end - m.start() :]

        text = pattern.sub(replace, text)
    return text


RULES: tuple[Callable[[str], str], ...] = (
    _urls,
    _authorization_headers,
    _scheme_credentials,
    _known_tokens,
    _assignments,
    _extra_patterns,
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known ``secrets`` string and every secret the rules find redacted."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for rule in RULES:
        text = rule(text)
    return text


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
