"""The alert channel interface: one destination of alerts, one delivery per alert."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from resilience import alerts
from resilience.models import AlertDelivery, CircuitEvent
from resilience.rules import Problem, number
from resilience.sanitize import describe_error

DEFAULT_HTTP_TIMEOUT = 10.0  # seconds per socket operation of a webhook POST


class Channel:
    """One destination of alerts. Subclasses implement ``send``; every method has a default.

    ``name`` is the channel's key on its ``AlertDelivery`` rows; ``options`` its ``OPTIONS``.
    A channel never puts a secret (a webhook URL, a signing key) into an error text: that text
    is logged and shown in the admin.
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        problems = [p for p in self.check_options(options) if not p.warning]
        if problems:
            raise ImproperlyConfigured(f"alert channel {name!r}: {problems[0].message}")
        self.name = name
        self.options = options

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[Problem]:
        """What is wrong with ``options`` (the system checks report each problem)."""
        if "cooldown_seconds" not in options:
            return []
        return number(
            "ALERTS.CHANNELS.cooldown",
            "A channel's OPTIONS['cooldown_seconds']",
            options["cooldown_seconds"],
            0,
            7 * 86_400,
            integer=True,
            hint="Seconds between two opening alerts of one circuit on this channel.",
        )

    def budget(self) -> float:
        """Seconds one send may take at most (a task's time limit, a claim's lifetime)."""
        return 3 * DEFAULT_HTTP_TIMEOUT

    def send(self, event: CircuitEvent, delivery: AlertDelivery) -> None:
        """Deliver the alert of ``event``; raise on failure (``is_transient`` classifies it)."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """True when a later attempt may succeed. Celery's soft time limit (a hung server) is
        matched by name so Celery stays optional."""
        return type(exc).__name__ == "SoftTimeLimitExceeded"

    def expected(self, exc: BaseException) -> bool:
        """True when the destination refused or failed (logged without a traceback), False
        when the failure looks like a bug."""
        return isinstance(exc, alerts.NoRecipients)

    def describe(self, exc: BaseException) -> str:
        """A one-line, secret-free description of a failure (stored, logged, shown)."""
        return describe_error(exc)
