"""Celery tasks: send one alert delivery, and sweep what the web processes could not finish."""

from __future__ import annotations

from celery import shared_task

from resilience import delivery, events


@shared_task(
    bind=True,
    autoretry_for=(delivery.TransientDeliveryError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=delivery.MAX_ATTEMPTS - 1,
    acks_late=True,
    ignore_result=True,
    # Defaults for a task published elsewhere; dispatch() passes the channel's own limits.
    soft_time_limit=3 * delivery.DEFAULT_SEND_TIMEOUT,
    time_limit=3 * delivery.DEFAULT_SEND_TIMEOUT + 5,
)
def send_delivery(self, delivery_id: int) -> str:
    """Send ``AlertDelivery`` ``delivery_id`` once; safe to run any number of times."""
    outcome = delivery.deliver(delivery_id)
    if outcome == delivery.RETRY:
        raise delivery.TransientDeliveryError(f"alert delivery {delivery_id} not sent yet")
    return outcome


@shared_task(ignore_result=True)
def send_alert(event_id: int) -> bool:
    """Hand the alert of ``CircuitEvent`` ``event_id`` to its channels (one ``send_delivery``
    each). Kept for messages queued by a release before channels; the sweeper retries."""
    return delivery.dispatch(event_id)


@shared_task(ignore_result=True)
def drain_outbox(limit: int | None = None) -> int:
    """Persist transitions left in backend outboxes and re-queue lost alerts (Celery beat)."""
    return events.drain(limit)
