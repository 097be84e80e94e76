"""Checks of ``BACKEND`` and ``OPTIONS``: the class, its options, a trial build, and the memory
backend in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from resilience.backends import build_backend
from resilience.backends.base import Backend
from resilience.conf import DEFAULTS
from resilience.rules import Problem, show
from resilience.sanitize import redact

MEMORY_BACKEND = "resilience.backends.memory.MemoryBackend"


def _backend_class(raw: dict[str, Any]) -> tuple[type[Backend] | None, list[Problem]]:
    """The class ``BACKEND`` names, or None and why not."""
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


def check_backend(raw: dict[str, Any]) -> list[Problem]:
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


def check_memory_backend(raw: dict[str, Any]) -> list[Problem]:
    """A warning for the per-process memory backend outside ``DEBUG``."""
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
