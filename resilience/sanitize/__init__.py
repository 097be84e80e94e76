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

from resilience.sanitize.errors import ERROR_MAX_CHARS, describe_error, one_line
from resilience.sanitize.names import (
    NOT_SENSITIVE_LAST,
    REDACTED,
    SENSITIVE_NAMES,
    SENSITIVE_SUFFIXES,
    SENSITIVE_WORDS,
    STRONG_WORDS,
    is_sensitive,
    looks_secret,
)
from resilience.sanitize.rules import AUTH_SCHEMES, KNOWN_TOKENS, RULES, compile_patterns, redact
from resilience.sanitize.urls import redact_url

__all__ = [
    "AUTH_SCHEMES",
    "ERROR_MAX_CHARS",
    "KNOWN_TOKENS",
    "NOT_SENSITIVE_LAST",
    "REDACTED",
    "RULES",
    "SENSITIVE_NAMES",
    "SENSITIVE_SUFFIXES",
    "SENSITIVE_WORDS",
    "STRONG_WORDS",
    "compile_patterns",
    "describe_error",
    "is_sensitive",
    "looks_secret",
    "one_line",
    "redact",
    "redact_url",
]
