"""System checks for the ``RESILIENCE`` setting (ids ``resilience.E0xx`` / ``resilience.W0xx``)."""

from __future__ import annotations

import importlib.util
import math
from numbers import Real
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.module_loading import import_string

from resilience.backends import build_backend
from resilience.conf import DEFAULTS, DELIVERY_CHOICES, NESTED, ON_BACKEND_ERROR_CHOICES
from resilience.models import BreakerPolicy
from resilience.sanitize import redact
from resilience.validators import validate_circuit_name

MEMORY_BACKEND = "resilience.backends.memory.MemoryBackend"


def _error(msg: str, hint: str, id_: str) -> Error:
    return Error(msg, hint=hint, obj="settings.RESILIENCE", id=f"resilience.{id_}")


def _policy_errors(label: str, values: Any) -> list[Error]:
    if not isinstance(values, dict):
        return [_error(f"{label} must be a dict of BreakerPolicy fields.", "Use a dict.", "E004")]
    fields = {f.name for f in BreakerPolicy._meta.get_fields() if getattr(f, "editable", False)}
    unknown = sorted(set(values) - fields - {"id"})
    if unknown:
        return [
            _error(
                f"{label} has unknown policy fields: {', '.join(unknown)}.",
                f"Valid fields: {', '.join(sorted(fields))}.",
                "E004",
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
        return [_error(f"{label} has invalid values: {details}", "Fix the values.", "E005")]
    return []


def _value_errors(conf: dict[str, Any]) -> list[Error]:
    errors: list[Error] = []
    refresh = conf.get("POLICY_REFRESH_SECONDS", DEFAULTS["POLICY_REFRESH_SECONDS"])
    if (
        not isinstance(refresh, Real)
        or isinstance(refresh, bool)
        # typeshed's numbers.Real declares no comparison with int (a known mypy limitation).
        or not (math.isfinite(refresh) and 0 < refresh <= 3600)  # type: ignore[operator]
    ):
        errors.append(
            _error(
                "POLICY_REFRESH_SECONDS must be a number of seconds in (0, 3600], "
                f"not {refresh!r}.",
                "The default is 1.0.",
                "E003",
            )
        )
    on_error = conf.get("ON_BACKEND_ERROR", DEFAULTS["ON_BACKEND_ERROR"])
    if on_error not in ON_BACKEND_ERROR_CHOICES:
        errors.append(
            _error(
                f"ON_BACKEND_ERROR must be one of {', '.join(ON_BACKEND_ERROR_CHOICES)}, "
                f"not {on_error!r}.",
                "'local' keeps per-process state while the backend is unreachable.",
                "E003",
            )
        )
    for key in ("ENABLED", "CREATE_MISSING_POLICIES", "EXPOSE_CIRCUIT_NAME"):
        if key in conf and not isinstance(conf[key], bool):
            errors.append(_error(f"{key} must be True or False.", "Use a bool.", "E003"))
    if "OPTIONS" in conf and not isinstance(conf["OPTIONS"], dict):
        errors.append(_error("OPTIONS must be a dict.", "See docs/settings.md.", "E003"))
    alerts = conf.get("ALERTS", {})
    if isinstance(alerts, dict):
        if alerts.get("DELIVERY", "celery") not in DELIVERY_CHOICES:
            errors.append(
                _error(
                    f"ALERTS['DELIVERY'] must be one of {', '.join(DELIVERY_CHOICES)}.",
                    "Use 'sync' on sites without Celery.",
                    "E003",
                )
            )
        recipients = alerts.get("RECIPIENTS", [])
        if not isinstance(recipients, list | tuple) or not all(
            isinstance(r, str) for r in recipients
        ):
            errors.append(
                _error(
                    "ALERTS['RECIPIENTS'] must be a list of e-mail addresses.",
                    "e.g. ['oncall@example.com'].",
                    "E003",
                )
            )
        site_url = alerts.get("SITE_URL")
        if site_url is not None and not (
            isinstance(site_url, str) and site_url.startswith(("http://", "https://"))
        ):
            errors.append(
                _error(
                    "ALERTS['SITE_URL'] must be None or an absolute http(s) URL.",
                    "e.g. 'https://www.example.com'.",
                    "E003",
                )
            )
        cooldown = alerts.get("COOLDOWN_SECONDS", 300)
        if not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0:
            errors.append(
                _error(
                    "ALERTS['COOLDOWN_SECONDS'] must be an integer >= 0.",
                    "The default is 300.",
                    "E003",
                )
            )
    health = conf.get("HEALTH", {})
    if isinstance(health, dict):
        status = health.get("CRITICAL_STATUS", 503)
        if not isinstance(status, int) or not 200 <= status <= 599:
            errors.append(
                _error(
                    "HEALTH['CRITICAL_STATUS'] must be an HTTP status code.",
                    "The default is 503.",
                    "E003",
                )
            )
        token = health.get("TOKEN")
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            errors.append(
                _error(
                    "HEALTH['TOKEN'] must be None or a string of 16+ characters.",
                    "Generate one with secrets.token_urlsafe().",
                    "E003",
                )
            )
    if "DEFAULT_POLICY" in conf:
        errors += _policy_errors("DEFAULT_POLICY", conf["DEFAULT_POLICY"])
    policies = conf.get("POLICIES", {})
    if not isinstance(policies, dict):
        errors.append(
            _error(
                "POLICIES must be a dict of circuit name -> field values.",
                "e.g. {'payments-api': {'failure_threshold': 3}}.",
                "E004",
            )
        )
    else:
        for name, values in policies.items():
            try:
                validate_circuit_name(name)
            except ValidationError:
                errors.append(
                    _error(
                        f"POLICIES has an invalid circuit name {str(name)[:100]!r}.",
                        "Letters, digits, '.', '_', ':' and '-'.",
                        "E004",
                    )
                )
                continue
            errors += _policy_errors(f"POLICIES[{name!r}]", values)
    return errors


def _backend_errors() -> list[Error]:
    """Build the backend once (no network I/O) so that bad OPTIONS fail here, not at a call."""
    try:
        build_backend().close()
    except ImproperlyConfigured as exc:
        return [
            _error(
                redact(str(exc))[:500],
                "Check RESILIENCE['BACKEND'] and RESILIENCE['OPTIONS'] (docs/settings.md).",
                "E002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list[Error | Warning]:
    raw = getattr(django_settings, "RESILIENCE", {})
    if not isinstance(raw, dict):
        return [_error("RESILIENCE must be a dict.", "See docs/settings.md.", "E001")]
    unknown = sorted(str(key) for key in set(raw) - set(DEFAULTS))
    errors: list[Error | Warning] = []
    if unknown:
        errors.append(
            _error(
                f"Unknown RESILIENCE keys: {', '.join(unknown)}.",
                f"Valid keys: {', '.join(DEFAULTS)}.",
                "E001",
            )
        )
    for key in NESTED:
        if key in raw and not isinstance(raw[key], dict):
            errors.append(_error(f"RESILIENCE['{key}'] must be a dict.", "See docs.", "E003"))
        elif key in raw:
            extra = sorted(set(raw[key]) - set(DEFAULTS[key]))
            if extra:
                errors.append(
                    _error(
                        f"Unknown {key} keys: {', '.join(extra)}.",
                        f"Valid keys: {', '.join(DEFAULTS[key])}.",
                        "E001",
                    )
                )
    errors += _value_errors(raw)
    backend = raw.get("BACKEND", DEFAULTS["BACKEND"])
    try:
        import_string(backend)
    except ImportError as exc:
        errors.append(
            _error(
                f"RESILIENCE['BACKEND'] {backend!r} cannot be imported: {exc}",
                "Use resilience.backends.memory.MemoryBackend or "
                "resilience.backends.redis.RedisBackend (pip install django-resilience[redis]).",
                "E002",
            )
        )
    else:
        errors += _backend_errors()
        if backend == MEMORY_BACKEND and not django_settings.DEBUG:
            errors.append(
                Warning(
                    "The memory backend keeps circuit state per process.",
                    hint="With several web or worker processes each one trips on its own; use "
                    "resilience.backends.redis.RedisBackend to share state.",
                    obj="settings.RESILIENCE",
                    id="resilience.W001",
                )
            )
    errors += _celery_warnings(raw)
    return errors


def _celery_warnings(raw: dict[str, Any]) -> list[Warning]:
    alerts = raw.get("ALERTS", {})
    delivery = alerts.get("DELIVERY", "celery") if isinstance(alerts, dict) else "celery"
    if delivery != "celery" or importlib.util.find_spec("celery") is not None:
        return []
    return [
        Warning(
            "ALERTS['DELIVERY'] is 'celery' but Celery is not installed: alerts stay pending.",
            hint="pip install django-resilience[celery], or set ALERTS['DELIVERY'] = 'sync'.",
            obj="settings.RESILIENCE",
            id="resilience.W002",
        )
    ]
