"""Maintenance windows in force: the circuit runs in the window's mode from start to end in
every process (the refresh sweep), openings are not alerted, start and end are events."""

from datetime import UTC, datetime, timedelta

import pytest

from resilience import CircuitOpenError, alerts, breaker, circuit_breaker, events
from resilience.models import AlertStatus, BreakerPolicy, CircuitEvent, MaintenanceWindow
from resilience.policies import registry

pytestmark = pytest.mark.usefixtures("breaker_db")


def now(clock):
    return datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)


def kinds():
    return list(
        CircuitEvent.objects.filter(kind__startswith="maintenance")
        .order_by("created_at", "id")
        .values_list("kind", "actor_id", "from_state", "to_state")
    )


@circuit_breaker("pay")
def call(ok=True):
    if not ok:
        raise ConnectionError("down")
    return "ok"


def test_a_forced_open_window_rejects_calls_only_inside_it(pay, clock):
    start = now(clock) + timedelta(minutes=10)
    MaintenanceWindow.objects.create(
        policy=pay, starts_at=start, ends_at=start + timedelta(hours=1), mode="forced_open",
        reason="PSP upgrade",
    )  # fmt: skip
    registry.refresh()
    assert call() == "ok" and kinds() == []

    clock.advance(10 * 60)
    registry.refresh()  # each process's refresh thread
    with pytest.raises(CircuitOpenError):
        call()
    assert breaker("pay").state == "forced_open"
    assert BreakerPolicy.objects.get(name="pay").mode == "enforced"  # the stored mode stays
    assert kinds() == [("maintenance_started", None, "enforced", "forced_open")]
    assert "PSP upgrade" in CircuitEvent.objects.get(kind="maintenance_started").reason

    registry.refresh()
    events.drain()  # another sweeper at the same moment: nothing twice
    assert len(kinds()) == 1

    clock.advance(60 * 60)
    registry.refresh()
    assert call() == "ok"
    assert kinds()[1:] == [("maintenance_ended", None, "forced_open", "enforced")]
    assert BreakerPolicy.objects.get(name="pay").window_next_at is None


def test_openings_inside_a_window_are_not_alerted(pay, clock):
    start = now(clock) - timedelta(minutes=1)
    MaintenanceWindow.objects.create(
        policy=pay, starts_at=start, ends_at=start + timedelta(hours=1), mode="monitor"
    )
    registry.refresh()
    assert registry.get("pay").mode == "monitor"
    pay.refresh_from_db()
    opening = CircuitEvent(circuit="pay", policy=pay, kind="opened", created_at=now(clock))
    assert alerts.initial_status(opening, pay) == AlertStatus.NONE  # muted
    clock.advance(3600)
    registry.refresh()
    pay.refresh_from_db()
    assert alerts.initial_status(opening, pay) == AlertStatus.PENDING


def test_an_operator_mode_wins_over_the_window(pay, clock):
    start = now(clock) - timedelta(minutes=1)
    MaintenanceWindow.objects.create(
        policy=pay, starts_at=start, ends_at=start + timedelta(hours=1), mode="disabled"
    )
    registry.refresh()
    assert registry.get("pay").mode == "disabled"
    breaker("pay").force_open(reason="incident")
    registry.refresh()
    assert registry.get("pay").mode == "forced_open"


def test_a_form_saved_during_a_window_does_not_undo_it(pay, clock):
    stale = BreakerPolicy.objects.get(name="pay")  # loaded before the window started
    MaintenanceWindow.objects.create(
        policy=pay, starts_at=now(clock), ends_at=now(clock) + timedelta(hours=1), mode="monitor"
    )
    registry.refresh()
    stale.failure_threshold = 4
    stale.save()
    row = BreakerPolicy.objects.get(name="pay")
    assert (row.failure_threshold, row.window_mode) == (4, "monitor")


def test_deleting_a_window_in_force_ends_it(pay, clock):
    window = MaintenanceWindow.objects.create(
        policy=pay, starts_at=now(clock), ends_at=now(clock) + timedelta(hours=1), mode="monitor"
    )
    registry.refresh()
    MaintenanceWindow.objects.get(pk=window.pk).delete()
    registry.refresh()
    assert registry.get("pay").mode == "enforced"
    assert [k for k, *_ in kinds()] == ["maintenance_started", "maintenance_ended"]


def test_a_window_already_over_leaves_no_events(pay, clock):
    start = now(clock) - timedelta(hours=2)
    MaintenanceWindow.objects.create(
        policy=pay, starts_at=start, ends_at=start + timedelta(hours=1), mode="monitor"
    )
    registry.refresh()
    assert kinds() == [] and registry.get("pay").mode == "enforced"
    assert MaintenanceWindow.objects.get().ended
