"""Cooldown and digest: a flapping circuit is fully recorded, mailed at most once per cooldown."""

import re

import pytest

from resilience import events
from resilience.models import AlertStatus, CircuitEvent
from tests.alerts.helpers import UpstreamDown, make_call, open_circuit
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_alerts")]


def test_flapping_200_times_in_ten_minutes(smtp, clock):
    BreakerPolicyFactory(
        name="flappy", failure_threshold=1, recovery_timeout=1, alert_cooldown_seconds=300
    )
    call = make_call("flappy")
    start = clock.now_ms()
    transitions = 0
    while transitions < 200:  # opened; then half_opened + closed: 3 transitions per 8.8 s
        with pytest.raises(UpstreamDown):
            call()
        clock.advance(4.4)
        assert call(ok=True) == "ok"
        clock.advance(4.4)
        transitions += 3
    assert clock.now_ms() - start <= 600_000
    assert events.flush(timeout=60)

    stored = CircuitEvent.objects.filter(circuit="flappy")
    assert stored.count() == transitions == 201  # every transition recorded
    opened = stored.filter(kind="opened").order_by("created_at")
    statuses = list(opened.values_list("alert_status", flat=True))
    assert set(statuses) == {AlertStatus.SENT, AlertStatus.SUPPRESSED}
    sent = opened.filter(alert_status=AlertStatus.SENT)
    messages = smtp.settle(quiet=0.5)
    assert len(messages) == sent.count() <= 600 // 300 + 1
    times = [e.created_at.timestamp() for e in sent]
    assert all(later - earlier >= 300 for earlier, later in zip(times, times[1:], strict=False))

    # Every e-mail after the first summarises the openings suppressed since the previous one.
    for message, (previous, event) in zip(messages[1:], zip(sent, sent[1:], strict=False),
                                          strict=True):  # fmt: skip
        text = message.get_body(("plain",)).get_content()
        count = int(re.search(r"opened (\d+) more times?", text).group(1))
        suppressed = opened.filter(
            alert_status=AlertStatus.SUPPRESSED,
            created_at__gt=previous.created_at,
            created_at__lt=event.created_at,
        )
        assert count == suppressed.count() > 0
    assert "more time" not in messages[0].get_body(("plain",)).get_content()


def test_recovery_alert_follows_an_announced_opening(smtp, clock):
    BreakerPolicyFactory(
        name="pay", failure_threshold=3, recovery_timeout=10, alert_on_recovery=True,
        alert_cooldown_seconds=3600,
    )  # fmt: skip
    open_circuit("pay")
    clock.advance(10)
    assert make_call("pay")(ok=True) == "ok"
    messages = smtp.wait_for(2)
    assert [m["Subject"] for m in smtp.settle(quiet=0.3)] == [
        "[resilience] Circuit opened: pay",
        "[resilience] Circuit closed: pay",
    ]
    assert len({m["Message-ID"] for m in messages}) == 2

    # Re-opened inside the cooldown: suppressed, and so is the recovery that follows it.
    clock.advance(5)
    open_circuit("pay")
    clock.advance(10)
    assert make_call("pay")(ok=True) == "ok"
    assert events.flush(timeout=20)
    assert len(smtp.settle(quiet=0.3)) == 2
    kinds = CircuitEvent.objects.filter(circuit="pay").order_by("created_at", "id")
    assert [(e.kind, e.alert_status) for e in kinds] == [
        ("opened", "sent"), ("half_opened", "none"), ("closed", "sent"),
        ("opened", "suppressed"), ("half_opened", "none"), ("closed", "none"),
    ]  # fmt: skip
