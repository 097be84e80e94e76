"""The ``RESILIENCE`` settings dict, read on every access so ``override_settings`` works."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "BACKEND": "resilience.backends.memory.MemoryBackend",
    "OPTIONS": {},
    "ENABLED": True,
    "DEFAULT_POLICY": {},
    "POLICIES": {},
    "CREATE_MISSING_POLICIES": True,
    "POLICY_REFRESH_SECONDS": 1.0,
    # Per-host HTTP circuits idle this long are forgotten (resilience.contrib._http); 0: never.
    "IDLE_CIRCUIT_SECONDS": 3600,
    "ON_BACKEND_ERROR": "local",
    "ALERTS": {
        "RECIPIENTS": [],
        "FROM_EMAIL": None,
        "COOLDOWN_SECONDS": 300,
        "DELIVERY": "celery",
        "SITE_URL": None,
        "CHANNELS": [{"BACKEND": "resilience.channels.EmailChannel", "OPTIONS": {}}],
    },
    "HEALTH": {"TOKEN": None, "CRITICAL_STATUS": 503},
    "EXPOSE_CIRCUIT_NAME": False,
    "REDACT": {"NAMES": [], "PATTERNS": []},
    "METRICS": {"MAX_CIRCUITS": 100},
    "TRACING": True,
}

# Keys whose value is a dict merged over the default dict (so a user can set one sub-key).
NESTED = ("ALERTS", "HEALTH", "REDACT", "METRICS")
ON_BACKEND_ERROR_CHOICES = ("local", "allow", "deny")
POLICY_REFRESH_MAX_SECONDS = 3600  # POLICY_REFRESH_SECONDS is a number in (0, this]
DELIVERY_CHOICES = ("celery", "sync")


def user_settings() -> dict[str, Any]:
    """The raw ``settings.RESILIENCE`` value (``{}`` when unset)."""
    value = getattr(django_settings, "RESILIENCE", None)
    return value if isinstance(value, dict) else {}


class ResilienceSettings:
    """Attribute access to the effective settings: ``conf.settings.POLICY_REFRESH_SECONDS``."""

    def get(self, key: str) -> Any:
        if key not in DEFAULTS:
            raise AttributeError(f"unknown RESILIENCE setting {key!r}")
        value = user_settings().get(key, DEFAULTS[key])
        if key in NESTED and isinstance(value, dict):
            merged = copy.deepcopy(DEFAULTS[key])
            merged.update(value)
            return merged
        return value

    def __getattr__(self, key: str) -> Any:
        # Only called on a miss: the value is then kept as an instance attribute, so later
        # reads cost a plain attribute lookup (the call path reads ENABLED on every call).
        # ``clear()`` runs on ``setting_changed``, which is what keeps this lazy.
        if key.isupper():
            value = self.get(key)
            self.__dict__[key] = value
            return value
        raise AttributeError(key)

    def clear(self) -> None:
        self.__dict__.clear()

    def as_dict(self) -> dict[str, Any]:
        return {key: self.get(key) for key in DEFAULTS}


settings = ResilienceSettings()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "RESILIENCE":
        settings.clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="resilience.conf.clear")


def __getattr__(name: str) -> Any:  # ``from resilience.conf import ENABLED`` also reads lazily
    if name in DEFAULTS:
        return settings.get(name)
    raise AttributeError(name)
