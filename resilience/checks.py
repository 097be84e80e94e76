"""System checks for the ``RESILIENCE`` setting: one id per problem (table in docs/settings.md)."""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator, validate_email
from django.utils.module_loading import import_string

from resilience import channels
from resilience.backends import build_backend
from resilience.backends.base import Backend
from resilience.conf import (
    DEFAULTS,
    DELIVERY_CHOICES,
    NESTED,
    ON_BACKEND_ERROR_CHOICES,
    POLICY_REFRESH_MAX_SECONDS,
)
from resilience.models import BOUNDS, BreakerPolicy
from resilience.rules import Problem, boolean, choice, dict_of, list_of_strings, number, show
from resilience.sanitize import compile_patterns, redact
from resilience.validators import validate_circuit_name

MEMORY_BACKEND = "resilience.backends.memory.MemoryBackend"
DOCS = "See docs/settings.md."
FALLBACK_CELERY_APP = "default"  # the name of the app Celery makes when the project made none

# Problem code -> check id. A backend's problem without an id here is reported as E002.
IDS: dict[str, str] = {
    "RESILIENCE": "E001",
    "BACKEND": "E002",
    "POLICY.type": "E004",
    "POLICY.values": "E005",
    "POLICY.name": "E006",
    "POLICY.fields": "E007",
    "unknown": "E008",
    "unknown.nested": "E009",
    "OPTIONS": "E010",
    "ENABLED": "E011",
    "CREATE_MISSING_POLICIES": "E012",
    "EXPOSE_CIRCUIT_NAME": "E013",
    "POLICY_REFRESH_SECONDS": "E014",
    "ON_BACKEND_ERROR": "E015",
    "ALERTS": "E016",
    "HEALTH": "E017",
    "REDACT": "E018",
    "ALERTS.RECIPIENTS": "E020",
    "ALERTS.RECIPIENTS.address": "E021",
    "ALERTS.FROM_EMAIL": "E022",
    "ALERTS.COOLDOWN_SECONDS": "E023",
    "ALERTS.DELIVERY": "E024",
    "ALERTS.SITE_URL": "E025",
    "HEALTH.TOKEN": "E030",
    "HEALTH.TOKEN.whitespace": "E031",
    "HEALTH.CRITICAL_STATUS": "E032",
    "REDACT.NAMES": "E040",
    "REDACT.PATTERNS": "E041",
    "REDACT.PATTERNS.invalid": "E042",
    "REDACT.PATTERNS.empty": "E043",
    "OPTIONS.clock": "E050",
    "OPTIONS.url": "E051",
    "OPTIONS.prefix": "E052",
    "OPTIONS.socket_timeout": "E053",
    "OPTIONS.socket_connect_timeout": "E054",
    "OPTIONS.reprobe_interval": "E055",
    "OPTIONS.log_interval": "E056",
    "OPTIONS.defer_successes": "E057",
    "OPTIONS.cluster": "E058",
    "OPTIONS.sentinels": "E059",
    "OPTIONS.service_name": "E060",
    "OPTIONS.sentinel_kwargs": "E061",
    "ALERTS.CHANNELS": "E070",
    "ALERTS.CHANNELS.keys": "E071",
    "ALERTS.CHANNELS.backend": "E072",
    "ALERTS.CHANNELS.url": "E073",
    "ALERTS.CHANNELS.secret": "E074",
    "ALERTS.CHANNELS.timeout": "E075",
    "ALERTS.CHANNELS.cooldown": "E076",
    "memory": "W001",
    "celery": "W002",
    "OPTIONS.ignored": "W003",
    "celery.app": "W004",
    "celery.broker": "W005",
    "ALERTS.nobody": "W006",
}


def _message(problem: Problem) -> CheckMessage:
    level = Warning if problem.warning else Error
    number_ = IDS.get(problem.code, "E002")
    return level(
        problem.message, hint=problem.hint, obj="settings.RESILIENCE", id=f"resilience.{number_}"
    )


def _nested(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """``raw[key]`` when it is a dict, else ``{}`` (its type is reported on its own)."""
    value = raw.get(key, {})
    return value if isinstance(value, dict) else {}


# --- keys and types ------------------------------------------------------------------------


def _unknown_keys(raw: dict[str, Any]) -> list[Problem]:
    found = []
    unknown = sorted(str(key) for key in set(raw) - set(DEFAULTS))
    if unknown:
        found.append(
            Problem(
                "unknown",
                f"Unknown RESILIENCE keys: {', '.join(unknown)}.",
                f"Valid keys: {', '.join(DEFAULTS)}.",
            )
        )
    for key in NESTED:
        extra = sorted(str(k) for k in set(_nested(raw, key)) - set(DEFAULTS[key]))
        if extra:
            found.append(
                Problem(
                    "unknown.nested",
                    f"Unknown {key} keys: {', '.join(extra)}.",
                    f"Valid keys: {', '.join(DEFAULTS[key])}.",
                )
            )
    return found


def _types(raw: dict[str, Any]) -> list[Problem]:
    found = []
    for key in (*NESTED, "OPTIONS"):
        if key in raw:
            found += dict_of(key, f"RESILIENCE[{key!r}]", raw[key], DOCS)
    for key in ("ENABLED", "CREATE_MISSING_POLICIES", "EXPOSE_CIRCUIT_NAME"):
        if key in raw:
            found += boolean(key, key, raw[key], f"The default is {DEFAULTS[key]}.")
    return found


def _top_level_values(raw: dict[str, Any]) -> list[Problem]:
    found = []
    if "POLICY_REFRESH_SECONDS" in raw:
        found += number(
            "POLICY_REFRESH_SECONDS",
            "POLICY_REFRESH_SECONDS",
            raw["POLICY_REFRESH_SECONDS"],
            0,
            POLICY_REFRESH_MAX_SECONDS,
            low_open=True,
            hint="Seconds; the default is 1.0.",
        )
    if "ON_BACKEND_ERROR" in raw:
        found += choice(
            "ON_BACKEND_ERROR",
            "ON_BACKEND_ERROR",
            raw["ON_BACKEND_ERROR"],
            ON_BACKEND_ERROR_CHOICES,
            "'local' keeps per-process state while the backend is unreachable.",
        )
    return found


# --- ALERTS --------------------------------------------------------------------------------


def _is_email(value: Any) -> bool:
    if not isinstance(value, str) or re.search(r"[\r\n]", value):
        return False
    _name, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def _recipients(alerts: dict[str, Any]) -> list[Problem]:
    if "RECIPIENTS" not in alerts:
        return []
    recipients = alerts["RECIPIENTS"]
    hint = "e.g. ['oncall@example.com']."
    found = list_of_strings("ALERTS.RECIPIENTS", "ALERTS['RECIPIENTS']", recipients, hint)
    if found:
        return found
    bad = [r for r in recipients if not _is_email(r)]
    if bad:
        found.append(
            Problem(
                "ALERTS.RECIPIENTS.address",
                f"ALERTS['RECIPIENTS'] has entries that are not e-mail addresses: "
                f"{', '.join(show(r, 80) for r in bad[:5])}.",
                hint,
            )
        )
    return found


def _sender_and_links(alerts: dict[str, Any]) -> list[Problem]:
    found = []
    sender = alerts.get("FROM_EMAIL")
    if sender is not None and not _is_email(sender):
        found.append(
            Problem(
                "ALERTS.FROM_EMAIL",
                f"ALERTS['FROM_EMAIL'] must be None or an e-mail address, not {show(sender)}.",
                "e.g. 'Resilience <resilience@example.com>'; None uses DEFAULT_FROM_EMAIL.",
            )
        )
    site_url = alerts.get("SITE_URL")
    if site_url is not None:
        try:
            URLValidator(schemes=["http", "https"])(site_url)
        except ValidationError:
            found.append(
                Problem(
                    "ALERTS.SITE_URL",
                    f"ALERTS['SITE_URL'] must be None or an absolute http(s) URL, "
                    f"not {show(site_url)}.",
                    "e.g. 'https://www.example.com'.",
                )
            )
    return found


def _alerts(raw: dict[str, Any]) -> list[Problem]:
    alerts = _nested(raw, "ALERTS")
    found = _recipients(alerts) + _sender_and_links(alerts)
    if "COOLDOWN_SECONDS" in alerts:
        found += number(
            "ALERTS.COOLDOWN_SECONDS",
            "ALERTS['COOLDOWN_SECONDS']",
            alerts["COOLDOWN_SECONDS"],
            *BOUNDS["alert_cooldown_seconds"],
            integer=True,
            hint="Seconds; the default is 300.",
        )
    if "DELIVERY" in alerts:
        found += choice(
            "ALERTS.DELIVERY",
            "ALERTS['DELIVERY']",
            alerts["DELIVERY"],
            DELIVERY_CHOICES,
            "Use 'sync' on sites without Celery.",
        )
    if "CHANNELS" in alerts:
        found += channels.check(alerts["CHANNELS"])
    return found


# --- HEALTH and REDACT ---------------------------------------------------------------------


def _health(raw: dict[str, Any]) -> list[Problem]:
    health = _nested(raw, "HEALTH")
    found = []
    token = health.get("TOKEN")
    hint = "Generate one with python -c 'import secrets; print(secrets.token_urlsafe())'."
    if isinstance(token, str) and re.search(r"[\s\x00-\x1f\x7f]", token):
        found.append(
            Problem(
                "HEALTH.TOKEN.whitespace",
                "HEALTH['TOKEN'] must not contain spaces or control characters (a bearer token "
                "is one word in the Authorization header).",
                hint,
            )
        )
    elif token is not None and (not isinstance(token, str) or len(token) < 16):
        found.append(
            Problem(
                "HEALTH.TOKEN",
                "HEALTH['TOKEN'] must be None or a string of 16+ characters (the value is not "
                "shown: it is a secret).",
                hint,
            )
        )
    if "CRITICAL_STATUS" in health:
        found += number(
            "HEALTH.CRITICAL_STATUS",
            "HEALTH['CRITICAL_STATUS']",
            health["CRITICAL_STATUS"],
            200,
            599,
            integer=True,
            hint="An HTTP status code; the default is 503.",
        )
    return found


def _pattern_problems(patterns: list[str]) -> list[Problem]:
    compiled = {p.pattern: p for p in compile_patterns(tuple(patterns))}
    invalid = [p for p in patterns if p not in compiled]
    empty = [p for p in patterns if p in compiled and compiled[p].fullmatch("")]
    found = []
    if invalid:
        found.append(
            Problem(
                "REDACT.PATTERNS.invalid",
                f"REDACT['PATTERNS'] has patterns that do not compile: "
                f"{', '.join(show(p) for p in invalid[:5])}.",
                "Python regular expressions (the re module).",
            )
        )
    if empty:
        found.append(
            Problem(
                "REDACT.PATTERNS.empty",
                f"REDACT['PATTERNS'] has patterns that match the empty string: "
                f"{', '.join(show(p) for p in empty[:5])}.",
                "Such a pattern redacts nothing useful; make it match at least one character.",
            )
        )
    return found


def _redact(raw: dict[str, Any]) -> list[Problem]:
    redact_settings = _nested(raw, "REDACT")
    found = []
    if "NAMES" in redact_settings:
        found += list_of_strings(
            "REDACT.NAMES",
            "REDACT['NAMES']",
            redact_settings["NAMES"],
            "e.g. ['pin', 'x-tenant-key'].",
        )
    if "PATTERNS" in redact_settings:
        patterns = redact_settings["PATTERNS"]
        hint = "e.g. [r'tenant=(?P<secret>\\w+)']."
        bad_type = list_of_strings("REDACT.PATTERNS", "REDACT['PATTERNS']", patterns, hint)
        found += bad_type or _pattern_problems(list(patterns))
    return found


# --- policies ------------------------------------------------------------------------------


def _policy_values(label: str, values: Any) -> list[Problem]:
    if not isinstance(values, dict):
        return [Problem("POLICY.type", f"{label} must be a dict of BreakerPolicy fields.", DOCS)]
    fields = {f.name for f in BreakerPolicy._meta.get_fields() if getattr(f, "editable", False)}
    unknown = sorted(str(key) for key in set(values) - fields - {"id"})
    if unknown:
        return [
            Problem(
                "POLICY.fields",
                f"{label} has unknown policy fields: {', '.join(unknown)}.",
                f"Valid fields: {', '.join(sorted(fields))}.",
            )
        ]
    policy = BreakerPolicy(name="check", **values)
    try:
        policy.clean_fields(exclude=["name"])
        policy.clean()
    except ValidationError as exc:
        details = "; ".join(
            f"{field}: {' '.join(str(m) for m in messages)}"
            for field, messages in exc.message_dict.items()
        )
        return [Problem("POLICY.values", f"{label} has invalid values: {details}", "Fix them.")]
    return []


def _policies(raw: dict[str, Any]) -> list[Problem]:
    found = []
    if "DEFAULT_POLICY" in raw:
        found += _policy_values("DEFAULT_POLICY", raw["DEFAULT_POLICY"])
    policies = raw.get("POLICIES", {})
    if not isinstance(policies, dict):
        hint = "e.g. {'payments-api': {'failure_threshold': 3}}."
        return [*found, Problem("POLICY.type", "POLICIES must be a dict of name -> values.", hint)]
    for name, values in policies.items():
        try:
            validate_circuit_name(name)
        except ValidationError:
            found.append(
                Problem(
                    "POLICY.name",
                    f"POLICIES has an invalid circuit name {str(name)[:100]!r}.",
                    "Letters, digits, '.', '_', ':' and '-'.",
                )
            )
            continue
        found += _policy_values(f"POLICIES[{name!r}]", values)
    return found


# --- the backend ---------------------------------------------------------------------------


def _backend_class(raw: dict[str, Any]) -> tuple[type[Backend] | None, list[Problem]]:
    path = raw.get("BACKEND", DEFAULTS["BACKEND"])
    hint = (
        "Use resilience.backends.memory.MemoryBackend or resilience.backends.redis.RedisBackend "
        "(pip install django-resilience[redis])."
    )
    if not isinstance(path, str):
        return None, [Problem("BACKEND", f"BACKEND must be a dotted path, not {show(path)}.", hint)]
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        message = f"RESILIENCE['BACKEND'] {path!r} cannot be imported: {redact(str(exc))[:300]}"
        return None, [Problem("BACKEND", message, hint)]
    if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
        message = f"RESILIENCE['BACKEND'] {path!r} is not a resilience.backends.base.Backend."
        return None, [Problem("BACKEND", message, hint)]
    return backend_class, []


def _backend(raw: dict[str, Any]) -> list[Problem]:
    """The backend's class and options; then build it once (no network I/O), so that what only
    the client library rejects fails here, not at a call."""
    backend_class, found = _backend_class(raw)
    options = raw.get("OPTIONS", {})
    if backend_class is None or not isinstance(options, dict):
        return found
    found = backend_class.check_options(options)
    if any(not p.warning for p in found):
        return found
    try:
        build_backend().close()
    except ImproperlyConfigured as exc:
        found.append(
            Problem(
                "BACKEND",
                redact(str(exc))[:500],
                "Check RESILIENCE['BACKEND'] and RESILIENCE['OPTIONS'] (docs/settings.md).",
            )
        )
    return found


def _deployment_warnings(raw: dict[str, Any]) -> list[Problem]:
    found = []
    if raw.get("BACKEND", DEFAULTS["BACKEND"]) == MEMORY_BACKEND and not django_settings.DEBUG:
        found.append(
            Problem(
                "memory",
                "The memory backend keeps circuit state per process.",
                "With several web or worker processes each one trips on its own; use "
                "resilience.backends.redis.RedisBackend to share state.",
                warning=True,
            )
        )
    return found


def _celery_delivery(raw: dict[str, Any]) -> list[Problem]:
    """With ``DELIVERY = "celery"``, is there a Celery app and a broker for the alert task?"""
    if _nested(raw, "ALERTS").get("DELIVERY", "celery") != "celery":
        return []
    sync = "or set ALERTS['DELIVERY'] = 'sync' (docs/alerts.md)."
    if importlib.util.find_spec("celery") is None:
        message = "ALERTS['DELIVERY'] is 'celery' but Celery is not installed: alerts stay pending."
        hint = f"pip install django-resilience[celery], {sync}"
        return [Problem("celery", message, hint, warning=True)]
    # Celery is optional (the "celery" extra): imported only when installed. The app alerts are
    # published with is the one resilience.delivery uses: Celery's current app.
    app = importlib.import_module("celery").current_app
    if app.conf.task_always_eager:
        return []  # tasks run in the publishing process: no broker, no worker
    if app.main == FALLBACK_CELERY_APP:
        return [
            Problem(
                "celery.app",
                "ALERTS['DELIVERY'] is 'celery' but no Celery app is configured: alerts go to "
                "Celery's fallback app and its default broker (amqp://localhost:5672), and stay "
                "pending without a worker.",
                "Define a Celery app and import it in your project's __init__.py (Celery's "
                "'First steps with Django'), run `celery -A yourproject worker --beat`, " + sync,
                warning=True,
            )
        ]
    if not app.conf.broker_url:
        return [
            Problem(
                "celery.broker",
                f"The Celery app {show(app.main)} has no broker_url (CELERY_BROKER_URL): alerts "
                "go to Celery's default broker (amqp://localhost:5672).",
                "Set CELERY_BROKER_URL, e.g. 'redis://127.0.0.1:6379/0', and run a worker with "
                "beat, " + sync,
                warning=True,
            )
        ]
    return []


def _alert_recipients(raw: dict[str, Any]) -> list[Problem]:
    """Someone to alert when a policy names nobody (bad values are reported by ``_alerts``)."""
    recipients = _nested(raw, "ALERTS").get("RECIPIENTS", [])
    if recipients or getattr(django_settings, "ADMINS", None):
        return []
    return [
        Problem(
            "ALERTS.nobody",
            "ALERTS['RECIPIENTS'] and ADMINS are empty: an alert reaches nobody unless its "
            "policy lists alert recipients.",
            "e.g. RESILIENCE['ALERTS']['RECIPIENTS'] = ['oncall@example.com'].",
            warning=True,
        )
    ]


RULES: tuple[Callable[[dict[str, Any]], list[Problem]], ...] = (
    _unknown_keys,
    _types,
    _top_level_values,
    _alerts,
    _health,
    _redact,
    _policies,
    _backend,
    _deployment_warnings,
    _celery_delivery,
    _alert_recipients,
)


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = getattr(django_settings, "RESILIENCE", {})
    if not isinstance(raw, dict):
        return [_message(Problem("RESILIENCE", "RESILIENCE must be a dict.", DOCS))]
    return [_message(problem) for rule in RULES for problem in rule(raw)]
