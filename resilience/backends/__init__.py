"""The configured state backend, built once and rebuilt when ``RESILIENCE`` changes."""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from resilience.backends.base import Backend
from resilience.conf import settings
from resilience.sanitize import redact

__all__ = ["build_backend", "get_backend", "reset_backend"]

_lock = threading.Lock()
_backend: Backend | None = None


def get_backend() -> Backend:
    """The backend named by ``RESILIENCE["BACKEND"]`` with ``RESILIENCE["OPTIONS"]``, memoised."""
    backend = _backend
    if backend is not None:
        return backend
    with _lock:
        if _backend is None:
            backend = build_backend()
            backend.record_history()  # this process's calls go to the backend in use
            _set(backend)
        return _backend  # type: ignore[return-value]


def reset_backend() -> None:
    """Close the current backend; the next ``get_backend()`` builds a fresh one."""
    with _lock:
        _set(None)


def _set(backend: Backend | None) -> None:
    global _backend
    old, _backend = _backend, backend
    if old is not None:
        old.close()


def build_backend() -> Backend:
    """A new backend from the current settings (``ImproperlyConfigured`` if they are wrong)."""
    path, options = settings.BACKEND, settings.OPTIONS or {}
    try:
        backend_class = import_string(path)
    except ImportError as e:
        raise ImproperlyConfigured(f"RESILIENCE['BACKEND'] {path!r} cannot be imported: {e}") from e
    if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
        raise ImproperlyConfigured(
            f"RESILIENCE['BACKEND'] {path!r} is not a resilience.backends.base.Backend subclass."
        )
    try:
        return backend_class(**options)
    except ImproperlyConfigured:
        raise
    except Exception as e:
        raise ImproperlyConfigured(
            f"RESILIENCE['BACKEND'] {path!r} rejected its OPTIONS: {redact(str(e))}"
        ) from e


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "RESILIENCE":
        reset_backend()


setting_changed.connect(_on_setting_changed, dispatch_uid="resilience.backends.reset")
