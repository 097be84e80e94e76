"""The Redis backend's own ``OPTIONS``, checked before anything is built (no redis-py needed)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from resilience.rules import Problem, boolean, dict_of, number, show
from resilience.sanitize import redact_url

URL_SCHEMES = ("redis", "rediss", "unix")
# A key prefix: no space, newline, glob character (* ? [ ]) or hash-tag brace, so that keys stay
# one token in logs and ACL patterns (~prefix:*) and the circuit's {tag} is the only one.
PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
MAX_TIMEOUT = 10.0  # a socket timeout bounds how long one protected call may wait for Redis
MAX_REPROBE = 3600.0
MAX_LOG_INTERVAL = 86400.0
DOCS = "See docs/redis.md."


def _url(value: Any, sentinel: bool) -> list[Problem]:
    """With Sentinel the host comes from the sentinels: ``redis://`` (or only a password and a
    database) is then a complete URL."""
    if value is None:
        return []
    problem = [
        Problem(
            "OPTIONS.url",
            f"OPTIONS['url'] must be a redis://, rediss:// or unix:// URL, not "
            f"{show(_redacted(value))}.",
            "e.g. 'redis://:password@redis.internal:6379/0'.",
        )
    ]
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return problem
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return problem
    if parts.scheme not in URL_SCHEMES or not (parts.hostname or parts.path or sentinel):
        return problem
    return []


def _redacted(value: Any) -> Any:
    return redact_url(value) if isinstance(value, str) else value


def _prefix(value: Any) -> list[Problem]:
    if isinstance(value, str) and PREFIX_RE.fullmatch(value):
        return []
    return [
        Problem(
            "OPTIONS.prefix",
            f"OPTIONS['prefix'] must be 1 to 64 letters, digits, '.', '_', ':' or '-' (no space, "
            f"newline, '*', '?', '[', ']' or braces), not {show(value)}.",
            "The default is 'resilience'.",
        )
    ]


def _seconds(key: str, value: Any, high: float, *, low: float = 0.0, open_: bool = True) -> list:
    return number(
        f"OPTIONS.{key}",
        f"OPTIONS[{key!r}]",
        value,
        low,
        high,
        low_open=open_,
        hint=f"Seconds; {DOCS}",
    )


def _sentinel_address(value: Any) -> bool:
    if isinstance(value, str):
        host, _, port = value.rpartition(":")
    elif isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
    else:
        return False
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        return False
    return isinstance(host, str) and bool(host.strip()) and 0 < port_number < 65536


def _sentinels(options: dict[str, Any]) -> list[Problem]:
    sentinels = options.get("sentinels")
    if sentinels is None:
        return []
    problems = []
    if (
        isinstance(sentinels, str)
        or not isinstance(sentinels, list | tuple)
        or not sentinels
        or not all(_sentinel_address(s) for s in sentinels)
    ):
        problems.append(
            Problem(
                "OPTIONS.sentinels",
                f"OPTIONS['sentinels'] must be a non-empty list of 'host:port' strings or "
                f"(host, port) pairs, not {show(sentinels)}.",
                "e.g. ['sentinel-1:26379', 'sentinel-2:26379'].",
            )
        )
    service = options.get("service_name")
    if not (isinstance(service, str) and service.strip()):
        problems.append(
            Problem(
                "OPTIONS.service_name",
                f"OPTIONS['service_name'] must name the Sentinel master, not {show(service)}.",
                "e.g. 'mymaster'.",
            )
        )
    if options.get("cluster"):
        problems.append(
            Problem(
                "OPTIONS.cluster",
                "OPTIONS['cluster'] and OPTIONS['sentinels'] exclude each other.",
                DOCS,
            )
        )
    return problems


def problems(options: dict[str, Any]) -> list[Problem]:
    """Everything wrong with the backend's own options (others go to redis-py as they are)."""
    found = _url(options.get("url"), bool(options.get("sentinels")))
    if "prefix" in options:
        found += _prefix(options["prefix"])
    if "socket_timeout" in options:
        found += _seconds("socket_timeout", options["socket_timeout"], MAX_TIMEOUT)
    if options.get("socket_connect_timeout") is not None:
        found += _seconds("socket_connect_timeout", options["socket_connect_timeout"], MAX_TIMEOUT)
    if "reprobe_interval" in options:
        found += _seconds("reprobe_interval", options["reprobe_interval"], MAX_REPROBE)
    if "log_interval" in options:
        found += _seconds("log_interval", options["log_interval"], MAX_LOG_INTERVAL, open_=False)
    for key in ("cluster", "defer_successes"):
        if key in options:
            found += boolean(f"OPTIONS.{key}", f"OPTIONS[{key!r}]", options[key], DOCS)
    if options.get("sentinel_kwargs") is not None:
        found += dict_of(
            "OPTIONS.sentinel_kwargs",
            "OPTIONS['sentinel_kwargs']",
            options["sentinel_kwargs"],
            DOCS,
        )
    return found + _sentinels(options)


def validate(options: dict[str, Any]) -> None:
    """Raise ``ImproperlyConfigured`` naming every problem of ``options``."""
    errors = [p.message for p in problems(options) if not p.warning]
    if errors:
        raise ImproperlyConfigured("RedisBackend: " + " ".join(errors))
