"""What an alert is: who gets one, when the cooldown suppresses it, and the e-mail itself."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.apps import apps
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.utils import DNS_NAME
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from resilience.backends import get_backend
from resilience.conf import settings as conf
from resilience.models import AlertStatus, BreakerPolicy, CircuitEvent, EventKind
from resilience.policies import ResolvedPolicy
from resilience.sanitize import one_line

logger = logging.getLogger("resilience")

SUBJECT_MAX = 200
DIGEST_MAX = 20
# Alerts the recipients were (or are about to be) told about: they anchor cooldown and recovery.
ANNOUNCED = (AlertStatus.PENDING, AlertStatus.SENT)


class NoRecipients(Exception):
    """Neither the policy, ``ALERTS["RECIPIENTS"]`` nor ``ADMINS`` names anyone."""


def cooldown(policy: BreakerPolicy) -> timedelta:
    seconds = policy.alert_cooldown_seconds
    if seconds is None:
        seconds = conf.ALERTS["COOLDOWN_SECONDS"]
    return timedelta(seconds=seconds or 0)


def initial_status(event: CircuitEvent, policy: BreakerPolicy) -> str:
    """The ``alert_status`` a new event is stored with.

    An opening alerts unless the policy says not to or an opening of the same circuit was
    announced less than the cooldown earlier (then it is ``suppressed`` and listed in the next
    alert). A close alerts, when the policy asks for recovery alerts, only if the last announced
    event of the circuit was an opening: recipients hear "recovered" once per "opened".
    """
    earlier = CircuitEvent.objects.filter(
        circuit=event.circuit, alert_status__in=ANNOUNCED, created_at__lte=event.created_at
    ).exclude(pk=event.pk)
    if event.kind == EventKind.OPENED:
        if not policy.alert_on_open or policy.window_mode:  # muted in a maintenance window
            return AlertStatus.NONE
        window = cooldown(policy)
        if (
            window
            and earlier.filter(
                kind=EventKind.OPENED, created_at__gt=event.created_at - window
            ).exists()
        ):
            return AlertStatus.SUPPRESSED
        return AlertStatus.PENDING
    if event.kind == EventKind.CLOSED and policy.alert_on_recovery:
        last = earlier.order_by("-created_at", "-id").values_list("kind", flat=True).first()
        return AlertStatus.PENDING if last == EventKind.OPENED else AlertStatus.NONE
    return AlertStatus.NONE


def recipients(policy: BreakerPolicy | None) -> list[str]:
    """Policy recipients, else ``ALERTS["RECIPIENTS"]``, else the e-mails in ``ADMINS``."""
    if policy is not None and policy.recipients:
        return policy.recipients
    configured = list(conf.ALERTS["RECIPIENTS"] or [])
    if configured:
        return configured
    # ADMINS holds (name, email) pairs; Django 6.0 also allows plain addresses.
    return [admin if isinstance(admin, str) else admin[1] for admin in settings.ADMINS]


def site_url() -> str:
    """``ALERTS["SITE_URL"]``, else ``https://`` + the current ``django.contrib.sites`` domain."""
    url = conf.ALERTS.get("SITE_URL")
    if url:
        return url.rstrip("/") + "/"
    if apps.is_installed("django.contrib.sites"):
        from django.contrib.sites.models import Site

        try:
            return f"https://{Site.objects.get_current().domain}/"
        except Exception:  # no SITE_ID, or the row is missing: links stay relative
            logger.debug("resilience: no current Site for alert links", exc_info=True)
    return ""


def admin_url(event: CircuitEvent) -> str:
    """Absolute (when a site URL is known) admin link of the event's policy, or of the event."""
    try:
        if event.policy_id:
            path = reverse("admin:resilience_breakerpolicy_change", args=[event.policy_id])
        else:
            path = reverse("admin:resilience_circuitevent_change", args=[event.pk])
    except NoReverseMatch:
        return ""
    base = site_url()
    return urljoin(base, path) if base else path


def message_id(event: CircuitEvent) -> str:
    """Derived from the event only: a resent alert carries the same ``Message-ID``."""
    domain = urlsplit(site_url()).hostname or str(DNS_NAME)
    stamp = int(event.created_at.timestamp() * 1000)
    return f"<resilience.event.{event.pk}.{stamp}@{domain}>"


def digest(event: CircuitEvent) -> dict[str, Any]:
    """Openings suppressed since the previous sent alert of this circuit (for the next e-mail)."""
    previous = (
        CircuitEvent.objects.filter(
            circuit=event.circuit,
            kind=EventKind.OPENED,
            alert_status=AlertStatus.SENT,
            created_at__lt=event.created_at,
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    )
    suppressed = CircuitEvent.objects.filter(
        circuit=event.circuit,
        alert_status=AlertStatus.SUPPRESSED,
        created_at__lte=event.created_at,
    ).exclude(pk=event.pk)
    if previous is not None:
        suppressed = suppressed.filter(created_at__gt=previous)
    recent = list(suppressed.order_by("-created_at", "-id")[:DIGEST_MAX])
    count = suppressed.count() if len(recent) == DIGEST_MAX else len(recent)
    return {"count": count, "recent": recent, "since": previous}


def trial(event: CircuitEvent, policy: BreakerPolicy) -> dict[str, Any]:
    """When the trial call of an opening happens, and the circuit's state right now.

    The live snapshot is exact while the circuit is still in the generation this event opened.
    Otherwise, or when the backend cannot tell (unreachable, or per-process state of another
    process), the policy's recovery timeout gives the time; it is exact without backoff.
    """
    expected = event.created_at + timedelta(seconds=policy.recovery_timeout)
    info: dict[str, Any] = {"at": expected, "exact": policy.backoff_multiplier == 1, "state": ""}
    try:
        snapshot = get_backend().snapshot(event.circuit, ResolvedPolicy.from_row(policy).policy)
    except Exception:  # the e-mail is still worth sending without live state
        logger.debug("resilience: no snapshot for the alert of %s", event.circuit, exc_info=True)
        return info
    epoch, _, generation = (event.transition_id or "").partition(":")
    if not epoch or snapshot.get("epoch") != epoch:
        return info  # not the state this event came from
    info["state"] = snapshot.get("state", "")
    if str(snapshot.get("generation")) == generation and snapshot.get("open_until"):
        info["at"] = datetime.fromtimestamp(snapshot["open_until"], tz=UTC)
        info["exact"] = True
    return info


def context(event: CircuitEvent) -> dict[str, Any]:
    policy = event.policy or BreakerPolicy.from_settings(event.circuit)
    opened = event.kind == EventKind.OPENED
    return {
        "event": event,
        "circuit": one_line(event.circuit, 100),
        "opened": opened,
        "policy": policy,
        "failure_rate": event.failure_rate,
        "error": event.error,
        "trial": trial(event, policy) if opened else None,
        "admin_url": admin_url(event),
        "digest": digest(event),
        "cooldown_seconds": int(cooldown(policy).total_seconds()),
        "origin": event.origin,
    }


def build_message(event: CircuitEvent) -> EmailMultiAlternatives:
    """The alert e-mail (plain text + HTML) of ``event``; raises ``NoRecipients``."""
    policy = event.policy
    to = recipients(policy)
    if not to:
        raise NoRecipients(
            "no alert recipients: set BreakerPolicy.alert_recipients, "
            "RESILIENCE['ALERTS']['RECIPIENTS'] or ADMINS"
        )
    ctx = context(event)
    # One line whatever the template or circuit name contain: no header injection.
    subject = one_line(render_to_string("resilience/email/alert_subject.txt", ctx), SUBJECT_MAX)
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("resilience/email/alert.txt", ctx),
        from_email=conf.ALERTS["FROM_EMAIL"] or settings.DEFAULT_FROM_EMAIL,
        to=to,
        headers={
            "Message-ID": message_id(event),
            "Auto-Submitted": "auto-generated",
            "X-Resilience-Circuit": ctx["circuit"],
        },
    )
    message.attach_alternative(render_to_string("resilience/email/alert.html", ctx), "text/html")
    return message
