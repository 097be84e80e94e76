"""The alert e-mail: one per opening, to the right people, complete and safe (real SMTP)."""

import logging
import threading

import pytest
from django.db.models import F

from resilience import channels, delivery, events
from resilience.models import AlertDelivery, AlertStatus, CircuitEvent
from tests.alerts.helpers import RECIPIENT, open_circuit, opened_event, pending_delivery
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_alerts")]


def test_opening_sends_one_complete_email(smtp):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=3, recovery_timeout=60)
    open_circuit("payments-api")
    event = opened_event("payments-api")
    [message] = smtp.wait_for(1)

    assert message["Subject"] == "[resilience] Circuit opened: payments-api"
    assert message["To"] == RECIPIENT and message["From"] == "resilience@example.com"
    assert message["Message-ID"] == delivery_id(event)
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    admin = f"https://ops.example.com/admin/resilience/breakerpolicy/{policy.pk}/change/"
    for body in (text, html):
        assert "payments-api" in body
        assert "UpstreamDown: POST https://user:[redacted]@pay.example/charge" in body
        assert "pa55word" not in body
        assert admin in body
        assert "2023-11-14 22:14:20 UTC" in body  # opened at 22:13:20 + 60 s recovery timeout
    assert "Failures:       3" in text and "Failure rate:   100%" in text
    assert "Current state:  open" in text

    event.refresh_from_db()
    assert event.alert_status == AlertStatus.SENT and event.alert_sent_at is not None
    assert event.alert_attempts == 1 and event.alert_claimed_at is None
    assert events.drain() == 0  # nothing left to do: no second e-mail
    assert len(smtp.settle(quiet=0.3)) == 1


def delivery_id(event):
    from resilience.alerts import message_id

    return message_id(event)


def test_recipients_fall_back_from_policy_to_setting_to_admins(smtp, settings):
    BreakerPolicyFactory(name="a", failure_threshold=3, alert_recipients="x@example.com\ny@ex.org")
    open_circuit("a")
    assert smtp.wait_for(1)[0]["To"] == "x@example.com, y@ex.org"

    smtp.clear()
    settings.RESILIENCE = {**settings.RESILIENCE, "ALERTS": {"DELIVERY": "sync"}}
    settings.ADMINS = [("Ops", "ops@example.com")]
    BreakerPolicyFactory(name="b", failure_threshold=3)
    open_circuit("b")
    assert smtp.wait_for(1)[0]["To"] == "ops@example.com"

    settings.ADMINS = []
    BreakerPolicyFactory(name="c", failure_threshold=3)
    open_circuit("c")
    assert events.flush(timeout=10)
    assert opened_event("c").alert_status == AlertStatus.FAILED
    assert len(smtp.settle(quiet=0.3)) == 1


def test_hostile_subject_template_cannot_inject_headers(smtp, settings, tmp_path):
    folder = tmp_path / "resilience" / "email"
    folder.mkdir(parents=True)
    (folder / "alert_subject.txt").write_text(
        "Alert\r\nBcc: victim@evil.example\n\x00{{ circuit }}\u2028 down"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "Alert Bcc: victim@evil.example pay down"
    assert message["Bcc"] is None


def test_permanent_rejection_fails_once_without_retries(smtp, caplog):
    caplog.set_level(logging.INFO, logger="resilience")
    smtp.fail_always(550)
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    event = opened_event("pay")
    assert events.flush(timeout=10)
    event.refresh_from_db()
    assert event.alert_status == AlertStatus.FAILED and event.alert_attempts == 1
    assert smtp.attempts == 1 and smtp.messages == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "550" in errors[0].getMessage()
    assert events.drain() == 0  # the sweeper leaves failed alerts alone
    assert smtp.attempts == 1


def test_transient_rejections_are_retried_into_one_email(smtp):
    smtp.fail_next(451, times=3)
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    messages = smtp.wait_for(1, timeout=30)
    assert len(smtp.settle(quiet=0.5)) == len(messages) == 1
    event = opened_event("pay")
    event.refresh_from_db()
    assert (event.alert_status, event.alert_attempts, smtp.attempts) == ("sent", 4, 4)


def test_a_claimed_alert_is_never_sent_twice_until_the_claim_is_stale(smtp):
    BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    row = pending_delivery("pay")

    assert delivery.claim(row.pk)  # a sender that dies right after claiming
    assert delivery.deliver(row.pk) == delivery.SKIPPED
    assert events.drain() == 0  # claimed recently: not overdue
    AlertDelivery.objects.filter(pk=row.pk).update(
        claimed_at=F("claimed_at") - delivery.claim_ttl()
    )
    assert events.drain() == 1  # stale claim: the sweeper re-sends
    assert delivery.deliver(row.pk) == delivery.SKIPPED
    assert len(smtp.settle(quiet=0.3)) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (AlertStatus.SENT, 2)
    assert CircuitEvent.objects.get(pk=row.event_id).alert_status == AlertStatus.SENT


def test_an_event_stored_before_channels_is_planned_by_the_sweeper(smtp):
    """A pending event without delivery rows (stored by an older release) still alerts once."""
    BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    event = opened_event("pay")
    CircuitEvent.objects.filter(pk=event.pk).update(alert_status=AlertStatus.PENDING)
    assert events.drain() == 1
    assert len(smtp.settle(quiet=0.3)) == 1
    assert CircuitEvent.objects.get(pk=event.pk).alert_status == AlertStatus.SENT
    assert AlertDelivery.objects.filter(event=event).count() == 1
    assert events.drain() == 0


def test_admin_link_is_a_path_without_a_site_url(settings):
    from resilience.alerts import admin_url, message_id

    settings.RESILIENCE = {**settings.RESILIENCE, "ALERTS": {"DELIVERY": "sync"}}
    policy = BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    event = opened_event("pay")
    assert admin_url(event) == f"/admin/resilience/breakerpolicy/{policy.pk}/change/"
    assert message_id(event).startswith(f"<resilience.event.{event.pk}.")


def test_a_hung_smtp_server_without_email_timeout_is_bounded(smtp, settings, monkeypatch):
    """EMAIL_TIMEOUT = None would let smtplib wait forever: the sender sets its own timeout."""
    settings.EMAIL_TIMEOUT = None
    monkeypatch.setattr(channels.email, "DEFAULT_SEND_TIMEOUT", 1.0)
    BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    row = pending_delivery("pay")
    smtp.hold_next()  # the server takes the message and never answers
    outcome = []
    sender = threading.Thread(target=lambda: outcome.append(delivery.deliver(row.pk)))
    sender.start()
    sender.join(delivery.send_budget() + 5)
    smtp.release()
    sender.join(10)
    assert outcome == [delivery.RETRY]
