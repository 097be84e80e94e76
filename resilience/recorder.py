"""Where the backends and the call path send what must be recorded: the seam below ``events``.

The backends and the call path (``resilience.decorators``) sit below the events layer and never
import it. Transitions they perform and the manual actions of a breaker (``force_open``,
``release``) go to the recorder installed here; ``ResilienceConfig.ready`` installs
``resilience.events``. Until then (Django not set up yet, or the app not installed),
transitions are handed to nobody and wait in the backend's outbox, from which the sweeper
(``resilience.events.drain``) stores them; a manual action cannot be recorded and raises
``AppRegistryNotReady``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from django.core.exceptions import AppRegistryNotReady

from resilience.engine_types import Transition

__all__ = ["Recorder", "emit", "install", "record_action"]


class Recorder(Protocol):
    """What the events layer offers the layers below it; ``resilience.events`` is the one.

    ``emit(circuit, transitions, error=None, actor=None, reason="", sync=False)`` logs and
    persists transitions and never raises; ``record_action(circuit, kind, *, actor=None,
    reason="", from_state="", to_state="")`` records a manual action synchronously (see
    ``resilience.events`` for both).
    """

    emit: Callable[..., None]
    record_action: Callable[..., Any]


_recorder: Recorder | None = None


def install(recorder: Recorder | None) -> None:
    """Send what is recorded from now on to ``recorder`` (None: to nobody)."""
    global _recorder
    _recorder = recorder


def emit(circuit: str, transitions: list[Transition], **kwargs: Any) -> None:
    """Hand transitions to the recorder; without one they wait in the backend's outbox."""
    recorder = _recorder
    if recorder is not None and transitions:
        recorder.emit(circuit, transitions, **kwargs)


def record_action(circuit: str, kind: str, **kwargs: Any) -> Any:
    """Record a manual action of circuit ``circuit``; raises without a recorder."""
    recorder = _recorder
    if recorder is None:
        raise AppRegistryNotReady(
            "resilience: no recorder for manual actions yet (is the app installed and ready?)"
        )
    return recorder.record_action(circuit, kind, **kwargs)
