"""Checks of ``RESILIENCE["ALERTS"]``: recipients, sender, cooldown, channels, and the Celery app
that delivers them."""

from __future__ import annotations

import importlib
import importlib.util
import re
from email.utils import parseaddr
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from resilience import channels
from resilience.checks.keys import nested
from resilience.conf import DELIVERY_CHOICES
from resilience.models import BOUNDS
from resilience.rules import Problem, choice, list_of_strings, number, show

FALLBACK_CELERY_APP = "default"  # the name of the app Celery makes when the project made none


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


def check_alerts(raw: dict[str, Any]) -> list[Problem]:
    """Every value of ``ALERTS``: recipients, sender, site URL, cooldown, delivery, channels."""
    alerts = nested(raw, "ALERTS")
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


def check_celery_delivery(raw: dict[str, Any]) -> list[Problem]:
    """With ``DELIVERY = "celery"``, is there a Celery app and a broker for the alert task?"""
    if nested(raw, "ALERTS").get("DELIVERY", "celery") != "celery":
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


def check_someone_is_alerted(raw: dict[str, Any]) -> list[Problem]:
    """Someone to alert when a policy names nobody (bad values are reported by ``check_alerts``)."""
    recipients = nested(raw, "ALERTS").get("RECIPIENTS", [])
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
