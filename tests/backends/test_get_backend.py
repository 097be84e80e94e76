"""``get_backend()``: built from ``RESILIENCE``, memoised, rebuilt when the setting changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from resilience import circuit_breaker
from resilience.backends import get_backend, reset_backend
from resilience.backends.base import Backend
from resilience.backends.memory import MemoryBackend
from resilience.clock import SystemClock
from resilience.policies import registry

ROOT = Path(__file__).resolve().parents[2]


class RecordingBackend(MemoryBackend):
    """A memory backend that remembers its options and whether it was closed."""

    def __init__(self, clock=None, **options):
        super().__init__(clock, **options)
        self.closed = False

    def close(self):
        self.closed = True
        super().close()


def test_the_default_is_a_memoised_memory_backend(settings):
    settings.RESILIENCE = {}
    backend = get_backend()
    assert type(backend) is MemoryBackend
    assert isinstance(backend.clock, SystemClock)
    assert get_backend() is backend


def test_options_reach_the_constructor(settings, clock):
    settings.RESILIENCE = {
        "BACKEND": f"{__name__}.RecordingBackend",
        "OPTIONS": {"clock": clock, "prefix": "app1"},
    }
    backend = get_backend()
    assert isinstance(backend, RecordingBackend)
    assert backend.clock is clock
    assert backend.options == {"prefix": "app1"}


def test_changing_the_setting_closes_and_rebuilds(settings):
    settings.RESILIENCE = {"BACKEND": f"{__name__}.RecordingBackend"}
    first = get_backend()
    settings.RESILIENCE = {"BACKEND": f"{__name__}.RecordingBackend", "OPTIONS": {"x": 1}}
    assert first.closed
    second = get_backend()
    assert second is not first and second.options == {"x": 1}


def test_other_settings_do_not_rebuild(settings):
    backend = get_backend()
    settings.USE_TZ = not settings.USE_TZ
    assert get_backend() is backend


def test_reset_backend_closes_it(settings):
    settings.RESILIENCE = {"BACKEND": f"{__name__}.RecordingBackend"}
    backend = get_backend()
    reset_backend()
    assert backend.closed and get_backend() is not backend


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("resilience.backends.nowhere.Backend", "cannot be imported"),
        ("resilience.backends.memory.NoSuchBackend", "cannot be imported"),
        ("not-a-dotted-path", "cannot be imported"),
        ("resilience.clock.SystemClock", "is not a resilience.backends.base.Backend"),
        ("resilience.backends.base.OUTBOX_MAX", "is not a resilience.backends.base.Backend"),
    ],
)
def test_a_bad_backend_path_is_improperly_configured(settings, path, message):
    settings.RESILIENCE = {"BACKEND": path}
    with pytest.raises(ImproperlyConfigured, match=message) as caught:
        get_backend()
    if "imported" in message:
        assert isinstance(caught.value.__cause__, ImportError)


def test_a_constructor_error_is_improperly_configured_from_the_cause(settings):
    settings.RESILIENCE = {"BACKEND": f"{__name__}.Picky"}
    with pytest.raises(ImproperlyConfigured, match="rejected its OPTIONS") as caught:
        get_backend()
    assert isinstance(caught.value.__cause__, ValueError)


class Picky(MemoryBackend):
    def __init__(self, clock=None, **options):
        raise ValueError("url is required")


def test_base_and_memory_import_without_django_settings():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "from resilience.backends.memory import MemoryBackend\n"
        "from resilience.engine import Policy\n"
        "b = MemoryBackend()\n"
        "assert b.acquire('x', Policy()).admitted\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


OPTIONAL = {"lane", "on_background_transitions", "flush", "probe", "close", "__init__"}


def test_every_abstract_and_optional_method_is_documented():
    for name in Backend.__abstractmethods__ | OPTIONAL:
        assert getattr(Backend, name).__doc__, name


class Laneless(MemoryBackend):
    """A backend with only what the ABC requires: no lanes."""

    lane = Backend.lane
    flush = Backend.flush
    probe = Backend.probe


def test_the_optional_methods_have_defaults_callers_can_rely_on(settings, clock):
    settings.RESILIENCE = {"BACKEND": f"{__name__}.Laneless", "OPTIONS": {"clock": clock}}
    backend = get_backend()
    assert backend.lane("x") is None and backend.probe() is True and backend.flush() is None
    registry.invalidate()

    @circuit_breaker("laneless")
    def call():
        return "ok"

    assert call() == "ok"  # no lane: admitted by acquire, counted by record
    assert backend.snapshot("laneless", registry.get("laneless").policy)["calls_in_window"] == 1
