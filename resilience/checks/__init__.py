"""System checks for the ``RESILIENCE`` setting: one id per problem (table in docs/settings.md).

One module per part of the setting (``keys``: its shape and top-level values; ``alerts``,
``health``, ``redact``, ``metrics``, ``policies``, ``backend``), each a few rules;
``check_settings``, registered here, runs them all in ``RULES`` order and gives each problem
its id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from resilience.checks import alerts, backend, health, keys, metrics, policies, redact
from resilience.checks.keys import DOCS
from resilience.rules import Problem

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
    "IDLE_CIRCUIT_SECONDS": "E019",
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
    "METRICS": "E080",
    "METRICS.MAX_CIRCUITS": "E081",
    "TRACING": "E082",
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


RULES: tuple[Callable[[dict[str, Any]], list[Problem]], ...] = (
    keys.check_unknown_keys,
    keys.check_types,
    keys.check_top_level_values,
    alerts.check_alerts,
    health.check_health,
    redact.check_redact,
    metrics.check_metrics,
    policies.check_policies,
    backend.check_backend,
    backend.check_memory_backend,
    alerts.check_celery_delivery,
    alerts.check_someone_is_alerted,
)


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = getattr(django_settings, "RESILIENCE", {})
    if not isinstance(raw, dict):
        return [_message(Problem("RESILIENCE", "RESILIENCE must be a dict.", DOCS))]
    return [_message(problem) for rule in RULES for problem in rule(raw)]
