"""The configured channels: ``ALERTS["CHANNELS"]`` read, checked, and built by name."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from resilience.channels.base import Channel
from resilience.channels.email import send_timeout
from resilience.conf import settings as conf
from resilience.rules import Problem, show


@dataclass(frozen=True)
class ChannelConfig:
    """One entry of ``ALERTS["CHANNELS"]`` with the name its deliveries are stored under."""

    name: str
    backend: str
    options: dict[str, Any]

    @property
    def cooldown_seconds(self) -> int:
        """``OPTIONS["cooldown_seconds"]``; 0 when unset or invalid (the checks report it)."""
        value = self.options.get("cooldown_seconds")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    def build(self) -> Channel:
        """The channel instance; ``ImproperlyConfigured`` when it cannot be imported or built."""
        try:
            channel_class = import_string(self.backend)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"alert channel {self.name!r}: BACKEND {self.backend!r} cannot be imported"
            ) from exc
        if not (isinstance(channel_class, type) and issubclass(channel_class, Channel)):
            raise ImproperlyConfigured(
                f"alert channel {self.name!r}: {self.backend!r} is not a "
                "resilience.channels.Channel"
            )
        return channel_class(self.name, self.options)


def _default_name(backend: str) -> str:
    tail = backend.rsplit(".", 1)[-1]
    if tail.endswith("Channel") and tail != "Channel":
        tail = tail[: -len("Channel")]
    return tail.lower()[:40] or "channel"


def configured() -> list[ChannelConfig]:
    """The channels of ``ALERTS["CHANNELS"]`` (entries that are not dicts are skipped: the
    system checks report them). Names: ``NAME`` if given, else from the class (``email``,
    ``webhook``, ``slack``), numbered from the second of a kind on (``webhook-2``)."""
    entries = conf.ALERTS.get("CHANNELS")
    if not isinstance(entries, list | tuple):
        entries = []
    seen: Counter[str] = Counter()
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        backend = str(entry.get("BACKEND", ""))
        name = str(entry.get("NAME") or _default_name(backend))[:40]
        seen[name] += 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        options = entry.get("OPTIONS") or {}
        found.append(ChannelConfig(name, backend, options if isinstance(options, dict) else {}))
    return found


def get(name: str) -> Channel:
    """The configured channel called ``name``; ``ImproperlyConfigured`` if none is (now)."""
    for config in configured():
        if config.name == name:
            return config.build()
    raise ImproperlyConfigured(f"alert channel {name!r} is not in ALERTS['CHANNELS'] any more")


def longest_budget() -> float:
    """The longest ``budget()`` of the channels that build (at least the e-mail one's)."""
    budgets = [3 * send_timeout()]
    for config in configured():
        try:
            budgets.append(config.build().budget())
        except ImproperlyConfigured:
            continue  # reported by the checks; its deliveries fail
    return max(budgets)


def check(value: Any) -> list[Problem]:
    """Every problem of an ``ALERTS["CHANNELS"]`` value (for ``manage.py check``)."""
    hint = "A list of {'BACKEND': 'resilience.channels.WebhookChannel', 'OPTIONS': {...}}."
    if not isinstance(value, list | tuple):
        message = f"ALERTS['CHANNELS'] must be a list, not {show(value)}."
        return [Problem("ALERTS.CHANNELS", message, hint)]
    found = []
    for index, entry in enumerate(value):
        label = f"ALERTS['CHANNELS'][{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("OPTIONS", {}), dict):
            found.append(
                Problem("ALERTS.CHANNELS", f"{label} must be a dict with a dict OPTIONS.", hint)
            )
            continue
        unknown = sorted(str(k) for k in set(entry) - {"BACKEND", "OPTIONS", "NAME"})
        if unknown:
            found.append(
                Problem(
                    "ALERTS.CHANNELS.keys",
                    f"{label} has unknown keys: {', '.join(unknown)}.",
                    "Valid keys: BACKEND, OPTIONS, NAME.",
                )
            )
        backend = entry.get("BACKEND")
        try:
            channel_class = import_string(backend) if isinstance(backend, str) else None
        except ImportError:
            channel_class = None
        if not (isinstance(channel_class, type) and issubclass(channel_class, Channel)):
            found.append(
                Problem(
                    "ALERTS.CHANNELS.backend",
                    f"{label}['BACKEND'] {show(backend)} is not an importable "
                    "resilience.channels.Channel subclass.",
                    "Use resilience.channels.EmailChannel, WebhookChannel or SlackChannel, "
                    "or a subclass of resilience.channels.Channel.",
                )
            )
            continue
        found += [
            Problem(p.code, f"{label}: {p.message}", p.hint, p.warning)
            for p in channel_class.check_options(entry.get("OPTIONS", {}))
        ]
    return found
