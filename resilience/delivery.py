"""How alerts go out: claim the event row, send once, classify failures, publish to Celery."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.core import mail
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db.models import F, Q
from django.db.models.functions import Now

from resilience import alerts
from resilience.conf import settings as conf
from resilience.models import AlertStatus, CircuitEvent
from resilience.sanitize import describe_error

logger = logging.getLogger("resilience")

SENT, SKIPPED, RETRY, FAILED = "sent", "skipped", "retry", "failed"
SEND_ALERT_TASK = "resilience.tasks.send_alert"  # the Celery task that calls deliver()
MAX_ATTEMPTS = 10  # claims per event, across task retries and sweeps, before it is ``failed``
DEFAULT_SEND_TIMEOUT = 30.0  # seconds per SMTP operation when EMAIL_TIMEOUT is None
REDISPATCH_AFTER = timedelta(seconds=30)  # a pending alert older than this was lost in transit
# Publishing to the broker from a background thread or the sweeper: give up fast, the sweeper
# publishes again later.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


class TransientDeliveryError(Exception):
    """The alert could not be sent now but may be later (SMTP 4xx, connection trouble)."""


def send_timeout() -> float:
    return float(getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_SEND_TIMEOUT)


def send_budget() -> float:
    """Seconds one delivery may take: connect, DATA and QUIT, each bounded by the timeout."""
    return 3 * send_timeout()


def claim_ttl() -> timedelta:
    """A claim older than this belongs to a worker that died: the row may be claimed again.

    Longer than the task's hard time limit (``send_budget() + 5``), so a live sender always
    finishes (or is killed) before anyone else may claim its event.
    """
    return timedelta(seconds=send_budget() + 10)


def _claimable() -> Q:
    # Database time (Now()), not this host's clock: claims stay exclusive across skewed hosts.
    return Q(alert_status=AlertStatus.PENDING) & (
        Q(alert_claimed_at__isnull=True) | Q(alert_claimed_at__lt=Now() - claim_ttl())
    )


def claim(event_id: int) -> bool:
    """Atomically take the right to send this event's alert (one UPDATE; False: not ours)."""
    return bool(
        CircuitEvent.objects.filter(_claimable(), pk=event_id).update(
            alert_claimed_at=Now(), alert_attempts=F("alert_attempts") + 1
        )
    )


def _finish(event_id: int, status: str) -> None:
    CircuitEvent.objects.filter(pk=event_id, alert_status=AlertStatus.PENDING).update(
        alert_status=status,
        alert_claimed_at=None,
        alert_sent_at=Now() if status == AlertStatus.SENT else None,
    )


def is_transient(exc: BaseException) -> bool:
    """SMTP 4xx, lost connections and timeouts may pass; 5xx and everything else will not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code < 500 for code, _msg in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500
    # SMTPServerDisconnected, SMTPConnectError, refused/reset connections, socket timeouts; a
    # Celery soft time limit (a hung server) is matched by name so Celery stays optional.
    return isinstance(exc, smtplib.SMTPException | OSError) or (
        type(exc).__name__ == "SoftTimeLimitExceeded"
    )


def deliver(event_id: int) -> str:
    """Send the alert of one pending event, at most once per claim; returns an outcome.

    ``sent``; ``skipped`` (not pending, or another sender holds a live claim); ``retry`` (a
    transient failure: the claim is released for the next attempt); ``failed`` (permanent, or
    ``MAX_ATTEMPTS`` used up; logged once).
    """
    if not claim(event_id):
        return SKIPPED
    event = CircuitEvent.objects.select_related("policy").get(pk=event_id)
    try:
        message = alerts.build_message(event)
        # The message's own connection, made here (EmailMessage.get_connection() is gone in
        # Django 6.1): an SMTP connection without a timeout gets one.
        connection = message.connection or mail.get_connection(fail_silently=False)
        if isinstance(connection, SMTPBackend) and connection.timeout is None:  # never forever
            connection.timeout = send_timeout()
        message.connection = connection
        message.send()
    except Exception as exc:
        if is_transient(exc) and event.alert_attempts < MAX_ATTEMPTS:
            CircuitEvent.objects.filter(pk=event_id).update(alert_claimed_at=None)
            logger.info(
                "resilience: alert for %s (event %s) will be retried: %s",
                event.circuit,
                event_id,
                describe_error(exc),
            )
            return RETRY
        _finish(event_id, AlertStatus.FAILED)
        logger.error(
            "resilience: alert for circuit %s (event %s) failed after %d attempt(s): %s",
            event.circuit,
            event_id,
            event.alert_attempts,
            describe_error(exc),
            exc_info=not (is_transient(exc) or _is_smtp(exc)),
        )
        return FAILED
    _finish(event_id, AlertStatus.SENT)
    logger.info(
        "resilience: alert for %s (event %s) sent to %d recipient(s)",
        event.circuit,
        event_id,
        len(message.recipients()),
    )
    return SENT


def _is_smtp(exc: BaseException) -> bool:
    return isinstance(exc, smtplib.SMTPException | alerts.NoRecipients)


def dispatch(event_id: int) -> bool:
    """Hand one pending alert to its delivery (Celery, or send here).

    False or an exception (broker down, Celery missing): the alert stays pending, try later.
    """
    if conf.ALERTS["DELIVERY"] == "sync":
        return deliver(event_id) != RETRY
    from celery import current_app  # Celery is optional (the "celery" extra)

    # By name: the task module sits above this one. A signature runs the registered task (so
    # CELERY_TASK_ALWAYS_EAGER applies; ResilienceConfig.ready imports resilience.tasks), or
    # publishes by name where it is not registered. Raises when the broker is down (after
    # PUBLISH_RETRY_POLICY): the caller retries later.
    current_app.signature(SEND_ALERT_TASK).apply_async(
        (event_id,),
        retry=True,
        retry_policy=PUBLISH_RETRY_POLICY,
        soft_time_limit=send_budget(),
        time_limit=send_budget() + 5,
    )
    return True


def overdue(limit: int | None = None) -> list[int]:
    """Pending alerts whose delivery was lost: unclaimed (or stale) and older than a moment."""
    ids = (
        CircuitEvent.objects.filter(_claimable(), created_at__lt=Now() - REDISPATCH_AFTER)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
    )
    return list(ids[:limit] if limit is not None else ids)
