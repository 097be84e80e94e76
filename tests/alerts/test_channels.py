"""Alert channels: e-mail, a signed webhook and Slack, each delivered once with its own status
(a real SMTP server and a real HTTP server receive them)."""

import hashlib
import hmac
import logging
import socket

import pytest

from resilience import delivery, events
from resilience.models import AlertDelivery, AlertStatus, CircuitEvent
from tests.alerts.helpers import make_call, open_circuit
from tests.factories import BreakerPolicyFactory
from tests.support.hooks import HookServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_alerts")]

SECRET = "whsec-0123456789abcdef"  # noqa: S105 - a test value
SLACK_TOKEN = "T0001/B0001/slack-url-is-the-secret"  # noqa: S105


@pytest.fixture(scope="module")
def hook_server():
    with HookServer() as server:
        yield server


@pytest.fixture
def hooks(hook_server):
    hook_server.clear()
    yield hook_server
    hook_server.release()


EMAIL = {"BACKEND": "resilience.channels.EmailChannel", "OPTIONS": {}}


def use_channels(settings, *extra, email=True):
    entries = [EMAIL, *extra] if email else list(extra)
    alerts = {**settings.RESILIENCE["ALERTS"], "CHANNELS": entries}
    settings.RESILIENCE = {**settings.RESILIENCE, "ALERTS": alerts}


def webhook(hooks, path="/hook", **options):
    return {
        "BACKEND": "resilience.channels.WebhookChannel",
        "OPTIONS": {"url": hooks.url(path), "secret": SECRET, "timeout": 2, **options},
    }


def slack(hooks):
    return {
        "BACKEND": "resilience.channels.SlackChannel",
        "OPTIONS": {"webhook_url": hooks.url(f"/services/{SLACK_TOKEN}")},
    }


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def opened(name):
    assert events.flush(timeout=30)
    return CircuitEvent.objects.get(circuit=name, kind="opened")


def test_every_channel_gets_exactly_one_delivery(smtp, hooks, settings, caplog):
    caplog.set_level(logging.INFO, logger="resilience")
    use_channels(settings, webhook(hooks), slack(hooks))
    BreakerPolicyFactory(name="payments-api", failure_threshold=3)
    open_circuit("payments-api")
    event = opened("payments-api")

    assert len(smtp.wait_for(1)) == 1
    [post] = hooks.wait_for(1, "/hook")
    [message] = hooks.wait_for(1, f"/services/{SLACK_TOKEN}")

    assert post.headers["content-type"] == "application/json"
    assert hmac.compare_digest(post.headers["x-resilience-signature"], signature(post.body))
    payload = post.json()
    assert payload["type"] == "circuit.opened" and payload["circuit"] == "payments-api"
    assert payload["event_id"] == event.pk and payload["failure_count"] == 3
    assert payload["delivery_id"] == int(post.headers["x-resilience-delivery"])
    assert "[redacted]" in payload["error"]
    assert "x-resilience-signature" not in message.headers  # Slack checks its own URL
    text = message.json()["text"]
    assert "*payments-api* opened" in text and text == message.json()["blocks"][0]["text"]["text"]
    for body in (post.body, message.body):
        assert b"pa55word" not in body and SECRET.encode() not in body
        assert SLACK_TOKEN.encode() not in body

    rows = AlertDelivery.objects.filter(event=event).order_by("channel")
    assert [(r.channel, r.status, r.attempts) for r in rows] == [
        ("email", "sent", 1),
        ("slack", "sent", 1),
        ("webhook", "sent", 1),
    ]
    event.refresh_from_db()
    assert event.alert_status == AlertStatus.SENT and event.alert_sent_at is not None
    assert events.drain() == 0  # nothing left: no second delivery anywhere
    for row in rows:
        assert delivery.deliver(row.pk) == delivery.SKIPPED  # a redelivered task
    assert len(smtp.settle(quiet=0.3)) == 1 and len(hooks.settle(quiet=0.3)) == 2
    assert SLACK_TOKEN not in caplog.text and SECRET not in caplog.text


def test_a_webhook_answering_500_is_retried_into_one_delivery(smtp, hooks, settings):
    hooks.fail_next(500, times=2)
    use_channels(settings, webhook(hooks))
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    event = opened("pay")
    assert len(hooks.wait_for(1, timeout=30)) == 1
    assert len(hooks.settle(quiet=0.5)) == 1
    assert [p.status for p in hooks.posts] == [500, 500, 200]
    # Every attempt is the same delivery: a receiver that got a 500 through can drop repeats.
    assert len({p.headers["x-resilience-delivery"] for p in hooks.posts}) == 1
    row = AlertDelivery.objects.get(event=event, channel="webhook")
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, "")
    assert len(smtp.settle(quiet=0.3)) == 1  # the e-mail went once, unaffected


def test_a_channel_that_is_down_never_blocks_another(smtp, hooks, settings, caplog):
    caplog.set_level(logging.INFO, logger="resilience")
    hooks.fail_always(503)
    with socket.socket() as unused:  # a port nobody listens on: connection refused
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}/{SLACK_TOKEN}"
    refused = {"BACKEND": "resilience.channels.WebhookChannel", "OPTIONS": {"url": dead}}
    use_channels(settings, webhook(hooks), refused, EMAIL, email=False)  # e-mail goes last
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    # The SMTP server has the message a moment before the sender records it as sent: wait on
    # the record (the two webhooks stay pending, so events.flush() would never return).
    email = AlertDelivery.objects.filter(channel="email", status=AlertStatus.SENT)
    assert wait_until(email.exists, timeout=20)
    assert len(smtp.messages) == 1
    event = CircuitEvent.objects.get(circuit="pay", kind="opened")
    # The server holds the message before it answers; the sender marks the row after the answer.
    sent = AlertDelivery.objects.filter(event=event, channel="email", status=AlertStatus.SENT)
    assert wait_until(sent.exists, timeout=10)
    rows = {r.channel: r for r in AlertDelivery.objects.filter(event=event).order_by("id")}
    assert list(rows) == ["webhook", "webhook-2", "email"]
    assert rows["email"].status == AlertStatus.SENT
    assert rows["webhook"].status == rows["webhook-2"].status == AlertStatus.PENDING
    assert rows["webhook"].last_error == "HTTP 503 Service Unavailable"
    assert "Connection refused" in rows["webhook-2"].last_error
    assert SLACK_TOKEN not in caplog.text + rows["webhook-2"].last_error
    event.refresh_from_db()
    assert event.alert_status == AlertStatus.PENDING  # still owed to two channels
    events.discard()  # stop the background retries (teardown's flush would wait for them)


def test_a_permanent_rejection_fails_that_channel_once(smtp, hooks, settings, caplog):
    hooks.fail_always(404)
    use_channels(settings, slack(hooks))
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    event = opened("pay")
    hooks.settle(quiet=0.5)
    row = AlertDelivery.objects.get(event=event, channel="slack")
    assert (row.status, row.attempts) == (AlertStatus.FAILED, 1)
    assert row.last_error == "HTTP 404 Not Found"
    assert len(hooks.posts) == 1 and events.drain() == 0
    event.refresh_from_db()
    assert event.alert_status == AlertStatus.SENT  # the e-mail reached someone
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "slack alert" in errors[0] and SLACK_TOKEN not in errors[0]


def test_a_channel_removed_from_the_settings_fails_its_delivery_clearly(smtp, hooks, settings):
    BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    event = opened("pay")
    use_channels(settings, webhook(hooks))
    CircuitEvent.objects.filter(pk=event.pk).update(alert_status=AlertStatus.PENDING)
    assert delivery.plan(event) == AlertStatus.PENDING
    use_channels(settings)  # the webhook is gone before the delivery runs
    assert delivery.dispatch(event.pk)
    row = AlertDelivery.objects.get(event=event, channel="webhook")
    assert row.status == AlertStatus.FAILED
    assert "'webhook' is not in ALERTS['CHANNELS']" in row.last_error
    assert AlertDelivery.objects.get(event=event, channel="email").status == AlertStatus.SENT
    assert hooks.posts == []


def test_each_channel_has_its_own_cooldown(smtp, hooks, settings, clock):
    use_channels(settings, webhook(hooks, cooldown_seconds=3600))
    BreakerPolicyFactory(
        name="flappy", failure_threshold=1, recovery_timeout=1, alert_cooldown_seconds=0
    )
    call = make_call("flappy")
    for _ in range(3):  # three openings, a minute apart
        with pytest.raises(Exception, match="503"):
            call()
        clock.advance(60)
    assert events.flush(timeout=30)
    assert len(smtp.wait_for(3)) == 3
    assert len(hooks.settle(quiet=0.5)) == 1
    statuses = list(
        AlertDelivery.objects.filter(channel="webhook")
        .order_by("event__created_at")
        .values_list("status", flat=True)
    )
    assert statuses == ["sent", "suppressed", "suppressed"]
    opened_statuses = CircuitEvent.objects.filter(kind="opened").values_list(
        "alert_status", flat=True
    )
    assert set(opened_statuses) == {AlertStatus.SENT}  # the e-mail went every time


def test_no_channels_means_no_alert(smtp, settings):
    use_channels(settings, email=False)
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    event = opened("pay")
    assert event.alert_status == AlertStatus.NONE
    assert not AlertDelivery.objects.exists() and events.drain() == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"BACKEND": "myapp.PagerChannel"}, "BACKEND 'myapp.PagerChannel' cannot be imported"),
        (
            {"BACKEND": "resilience.channels.WebhookChannel", "OPTIONS": {"url": "ftp://x/y"}},
            "http",
        ),
    ],
)
def test_a_broken_channel_fails_alone_and_loses_nothing(smtp, hooks, settings, entry, message):
    """A channel that cannot be built (unknown BACKEND, a webhook URL that is not http(s):
    manage.py check reports both, E072/E073) fails its own delivery with a clear error; the
    event is stored and the e-mail still goes."""
    use_channels(settings, entry)
    BreakerPolicyFactory(name="pay", failure_threshold=3)
    open_circuit("pay")
    event = opened("pay")
    assert events.flush(timeout=30)
    email = AlertDelivery.objects.get(event=event, channel="email")
    broken = AlertDelivery.objects.exclude(channel="email").get(event=event)
    assert email.status == AlertStatus.SENT
    assert broken.status == AlertStatus.FAILED
    assert message in broken.last_error
    assert "ftp://x/y" not in broken.last_error  # a URL is never shown (it may be a secret)
