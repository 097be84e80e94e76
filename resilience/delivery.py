"""How alerts go out: one delivery per channel, claimed, sent once, failures classified."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, Min, Q
from django.db.models.functions import Now

from resilience import channels
from resilience.conf import settings as conf
from resilience.models import AlertDelivery, AlertStatus, CircuitEvent, EventKind
from resilience.sanitize import describe_error, one_line

logger = logging.getLogger("resilience")

SENT, SKIPPED, RETRY, FAILED = "sent", "skipped", "retry", "failed"
SEND_DELIVERY_TASK = "resilience.tasks.send_delivery"  # the Celery task that calls deliver()
SEND_ALERT_TASK = "resilience.tasks.send_alert"  # before channels: one task per event
MAX_ATTEMPTS = 10  # claims per delivery, across task retries and sweeps, before it is ``failed``
DEFAULT_SEND_TIMEOUT = channels.DEFAULT_SEND_TIMEOUT
REDISPATCH_AFTER = timedelta(seconds=30)  # a pending alert older than this was lost in transit
# Alerts the recipients were (or are about to be) told about: they anchor a channel's cooldown.
ANNOUNCED = (AlertStatus.PENDING, AlertStatus.SENT)
# Publishing to the broker from a background thread or the sweeper: give up fast, the sweeper
# publishes again later.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


class TransientDeliveryError(Exception):
    """The alert could not be sent now but may be later (SMTP 4xx, HTTP 5xx, connection trouble)."""


def send_timeout() -> float:
    return channels.send_timeout()


def send_budget() -> float:
    """Seconds one e-mail delivery may take: connect, DATA and QUIT, each bounded by the timeout."""
    return 3 * send_timeout()


def claim_ttl() -> timedelta:
    """A claim older than this belongs to a worker that died: the row may be claimed again.

    Longer than a task's hard time limit (the longest channel budget + 5), so a live sender
    always finishes (or is killed) before anyone else may claim its delivery.
    """
    return timedelta(seconds=channels.longest_budget() + 10)


def _claimable() -> Q:
    # Database time (Now()), not this host's clock: claims stay exclusive across skewed hosts.
    return Q(status=AlertStatus.PENDING) & (
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=Now() - claim_ttl())
    )


# --- planning: which channels get this event's alert ---------------------------------------


def plan(event: CircuitEvent) -> str:
    """Create the deliveries of an alerting event: one per configured channel; idempotent.

    An opening inside a channel's own ``cooldown_seconds`` (after an opening of the same circuit
    announced on that channel) is ``suppressed`` on that channel only. Returns the event's
    status: ``pending`` while a delivery is to be made, ``suppressed`` when every channel is in
    cooldown, ``none`` when no channel is configured.
    """
    rows = []
    for config in channels.configured():
        status = AlertStatus.PENDING
        if event.kind == EventKind.OPENED and _in_cooldown(event, config):
            status = AlertStatus.SUPPRESSED
        rows.append(AlertDelivery(event=event, channel=config.name, status=status))
    AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    statuses = {row.status for row in rows}
    if AlertStatus.PENDING in statuses:
        return AlertStatus.PENDING
    return AlertStatus.SUPPRESSED if statuses else AlertStatus.NONE


def _in_cooldown(event: CircuitEvent, config: channels.ChannelConfig) -> bool:
    seconds = config.cooldown_seconds
    if not seconds:
        return False
    return (
        AlertDelivery.objects.filter(
            channel=config.name,
            status__in=ANNOUNCED,
            event__circuit=event.circuit,
            event__kind=EventKind.OPENED,
            event__created_at__gt=event.created_at - timedelta(seconds=seconds),
            event__created_at__lte=event.created_at,
        )
        .exclude(event=event)
        .exists()
    )


def _pending(event_id: int) -> list[int]:
    """Deliveries of the event nobody is sending; an event stored before channels existed (no
    deliveries yet) is planned now."""
    if not AlertDelivery.objects.filter(event_id=event_id).exists():
        event = CircuitEvent.objects.filter(pk=event_id, alert_status=AlertStatus.PENDING).first()
        if event is None:
            return []
        status = plan(event)
        if status != AlertStatus.PENDING:
            CircuitEvent.objects.filter(pk=event_id, alert_status=AlertStatus.PENDING).update(
                alert_status=status
            )
    ids = AlertDelivery.objects.filter(_claimable(), event_id=event_id).order_by("id")
    return list(ids.values_list("pk", flat=True))


# --- sending one delivery ------------------------------------------------------------------


def claim(delivery_id: int) -> bool:
    """Atomically take the right to send this delivery (one UPDATE; False: not ours)."""
    taken = AlertDelivery.objects.filter(_claimable(), pk=delivery_id).update(
        claimed_at=Now(), attempts=F("attempts") + 1
    )
    if taken:  # the event counts every attempt on any of its channels
        CircuitEvent.objects.filter(deliveries__pk=delivery_id).update(
            alert_attempts=F("alert_attempts") + 1
        )
    return bool(taken)


def deliver(delivery_id: int) -> str:
    """Send one pending delivery, at most once per claim; returns an outcome.

    ``sent``; ``skipped`` (not pending, or another sender holds a live claim); ``retry`` (a
    transient failure: the claim is released for the next attempt); ``failed`` (permanent, the
    channel is not configured (any more), or ``MAX_ATTEMPTS`` used up; logged once).
    """
    if not claim(delivery_id):
        return SKIPPED
    row = AlertDelivery.objects.select_related("event", "event__policy").get(pk=delivery_id)
    circuit = one_line(row.event.circuit, 100)
    channel = None
    try:
        channel = channels.get(row.channel)
        channel.send(row.event, row)
    except Exception as exc:
        transient = channel is not None and channel.is_transient(exc)
        text = channel.describe(exc) if channel is not None else describe_error(exc)
        if transient and row.attempts < MAX_ATTEMPTS:
            AlertDelivery.objects.filter(pk=delivery_id).update(claimed_at=None, last_error=text)
            logger.info(
                "resilience: %s alert for %s (event %s) will be retried: %s",
                row.channel,
                circuit,
                row.event_id,
                text,
            )
            return RETRY
        _finish(row, AlertStatus.FAILED, text)
        logger.error(
            "resilience: %s alert for circuit %s (event %s) failed after %d attempt(s): %s",
            row.channel,
            circuit,
            row.event_id,
            row.attempts,
            text,
            # A traceback only for what looks like a bug, not for a refusing destination.
            exc_info=not (transient or _expected(channel, exc)),
        )
        return FAILED
    _finish(row, AlertStatus.SENT)
    logger.info("resilience: %s alert for %s (event %s) sent", row.channel, circuit, row.event_id)
    return SENT


def _expected(channel: channels.Channel | None, exc: BaseException) -> bool:
    return channel is None or isinstance(exc, ImproperlyConfigured) or channel.expected(exc)


def _finish(row: AlertDelivery, status: str, error: str = "") -> None:
    AlertDelivery.objects.filter(pk=row.pk, status=AlertStatus.PENDING).update(
        status=status,
        claimed_at=None,
        sent_at=Now() if status == AlertStatus.SENT else None,
        last_error=error,
    )
    settle(row.event_id)


def settle(event_id: int) -> None:
    """Once no delivery of the event is pending, its ``alert_status`` sums them up: ``sent`` if
    any channel delivered, else ``failed`` if any failed, else ``suppressed``."""
    rows = AlertDelivery.objects.filter(event_id=event_id)
    statuses = set(rows.values_list("status", flat=True))
    if not statuses or AlertStatus.PENDING in statuses:
        return
    if AlertStatus.SENT in statuses:
        final = AlertStatus.SENT
    elif AlertStatus.FAILED in statuses:
        final = AlertStatus.FAILED
    else:
        final = AlertStatus.SUPPRESSED
    sent_at = rows.aggregate(first=Min("sent_at"))["first"]
    CircuitEvent.objects.filter(pk=event_id, alert_status=AlertStatus.PENDING).update(
        alert_status=final, alert_claimed_at=None, alert_sent_at=sent_at
    )


# --- handing deliveries to Celery ----------------------------------------------------------


def _budget(delivery_id: int) -> float:
    name = AlertDelivery.objects.filter(pk=delivery_id).values_list("channel", flat=True).first()
    try:
        return channels.get(str(name)).budget()
    except ImproperlyConfigured:  # it fails at once when it runs
        return send_budget()


def dispatch(event_id: int) -> bool:
    """Hand each pending delivery of one event to its sender (Celery, or send here).

    False or an exception (broker down, Celery missing): what is not sent stays pending; the
    sweeper tries later. Each delivery is its own task: a channel that is down or slow never
    holds up another.
    """
    ids = _pending(event_id)
    if conf.ALERTS["DELIVERY"] == "sync":
        return RETRY not in [deliver(delivery_id) for delivery_id in ids]
    from celery import current_app  # Celery is optional (the "celery" extra)

    for delivery_id in ids:
        budget = _budget(delivery_id)
        # By name: the task module sits above this one. A signature runs the registered task
        # (so CELERY_TASK_ALWAYS_EAGER applies; ResilienceConfig.ready imports
        # resilience.tasks), or publishes by name where it is not registered. Raises when the
        # broker is down (after PUBLISH_RETRY_POLICY): the caller retries later.
        current_app.signature(SEND_DELIVERY_TASK).apply_async(
            (delivery_id,),
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            soft_time_limit=budget,
            time_limit=budget + 5,
        )
    return True


def overdue(limit: int | None = None) -> list[int]:
    """Events with an alert delivery lost in transit: pending, unclaimed (or stale) and older
    than a moment; and alerting events stored before channels existed (no delivery yet)."""
    old = Now() - REDISPATCH_AFTER
    lost = AlertDelivery.objects.filter(_claimable(), event__created_at__lt=old).values_list(
        "event_id", flat=True
    )
    unplanned = CircuitEvent.objects.filter(
        alert_status=AlertStatus.PENDING, deliveries__isnull=True, created_at__lt=old
    ).values_list("pk", flat=True)
    ids = sorted(set(lost) | set(unplanned))
    return ids[:limit] if limit is not None else ids
