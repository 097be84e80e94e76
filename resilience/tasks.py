"""Celery tasks: send one alert e-mail, and sweep what the web processes could not finish."""

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
    # Defaults for a task published elsewhere; dispatch() passes limits from EMAIL_TIMEOUT.
    soft_time_limit=3 * delivery.DEFAULT_SEND_TIMEOUT,
    time_limit=3 * delivery.DEFAULT_SEND_TIMEOUT + 5,
)
def send_alert(self, event_id: int) -> str:
    """E-mail the alert of ``CircuitEvent`` ``event_id`` once; safe to run any number of times."""
    outcome = delivery.deliver(event_id)
    if outcome == delivery.RETRY:
        raise delivery.TransientDeliveryError(f"alert of event {event_id} not sent yet")
    return outcome


@shared_task(ignore_result=True)
def drain_outbox(limit: int | None = None) -> int:
    """Persist transitions left in backend outboxes and re-queue lost alerts (Celery beat)."""
    return events.drain(limit)
