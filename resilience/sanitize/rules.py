"""The redaction rules, in order, applied to free text (``redact``)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from django.core.exceptions import ImproperlyConfigured

from resilience.conf import settings as conf
from resilience.sanitize.names import REDACTED, is_sensitive, looks_secret
from resilience.sanitize.urls import redact_url

AUTH_SCHEMES = ("apikey", "api-key", "basic", "bearer", "digest", "negotiate", "ntlm", "token")


# A URL: scheme://, then anything up to whitespace or a quote/angle bracket around it.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>`]+", re.I)
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
