"""The time-boxed kill switch: force_open(until=...) from code, the command line and the admin;
it lifts itself (one ``released`` event, no actor) even on a circuit nobody calls."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry

from resilience import breaker, events
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.commands.helpers import exit_code, run
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.usefixtures("breaker_db")


def now(clock):
    return datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)


def released():
    return list(CircuitEvent.objects.filter(kind="released").values_list("circuit", "actor_id"))


def test_it_lifts_itself_at_that_time_without_a_call(pay, clock):
    until = now(clock) + timedelta(minutes=15)
    snapshot = breaker("pay").force_open(reason="provider incident", until=until)
    assert snapshot["state"] == "forced_open"
    row = BreakerPolicy.objects.get(name="pay")
    assert (row.mode, row.forced_until) == ("forced_open", until)
    forced = CircuitEvent.objects.get(kind="forced_open")
    assert forced.reason == f"provider incident [until {until.isoformat()}]"

    clock.advance(15 * 60 - 1)
    registry.refresh()  # what every process's refresh thread does each POLICY_REFRESH_SECONDS
    assert BreakerPolicy.objects.get(name="pay").mode == "forced_open" and released() == []

    clock.advance(1)
    registry.refresh()
    row = BreakerPolicy.objects.get(name="pay")
    assert (row.mode, row.forced_until) == ("enforced", None)
    assert released() == [("pay", None)]  # no actor: the clock did it
    event = CircuitEvent.objects.get(kind="released")
    assert (event.from_state, event.to_state) == ("forced_open", "closed")
    assert "kill switch expired" in event.reason
    assert registry.get("pay").mode == "enforced"  # this process's cache follows at once
    registry.refresh()
    BreakerPolicy.release_expired(now(clock))  # another process, a moment later
    assert released() == [("pay", None)]  # still one


def test_drain_lifts_it_too(pay, clock):
    """Celery beat (drain_outbox) and ``manage.py resilience drain`` lift expired switches."""
    breaker("pay").force_open(until=datetime.now(UTC) + timedelta(seconds=30))
    registry.clock = None
    BreakerPolicy.objects.filter(name="pay").update(
        mode="forced_open", forced_until=datetime.now(UTC) - timedelta(seconds=1)
    )
    events.drain()
    assert BreakerPolicy.objects.get(name="pay").mode == "enforced"
    assert released() == [("pay", None)]


@pytest.mark.parametrize(
    "until",
    [
        datetime(2020, 1, 1, tzinfo=UTC),  # in the past
        "2030-01-01T00:00:00Z",  # not a datetime
        datetime(2099, 1, 1),  # naive
    ],
)
def test_a_bad_until_is_a_clear_error_and_changes_nothing(pay, until):
    with pytest.raises(ValueError, match="until"):
        breaker("pay").force_open(until=until)
    assert BreakerPolicy.objects.get(name="pay").mode == "enforced"
    assert not CircuitEvent.objects.exists()


def test_a_manual_release_or_mode_edit_ends_the_time_box(pay, clock):
    breaker("pay").force_open(until=now(clock) + timedelta(hours=1))
    breaker("pay").release(reason="fixed early")
    assert BreakerPolicy.objects.get(name="pay").forced_until is None
    breaker("pay").force_open(until=now(clock) + timedelta(hours=1))
    row = BreakerPolicy.objects.get(name="pay")
    row.mode = "monitor"
    row.save()
    assert BreakerPolicy.objects.get(name="pay").forced_until is None
    breaker("pay").force_open(until=now(clock) + timedelta(hours=1))
    BreakerPolicy.objects.filter(name="pay").update(mode="enforced")  # a bulk edit
    assert BreakerPolicy.objects.get(name="pay").forced_until is None
    clock.advance(7200)
    registry.refresh()
    assert [kind for kind, _ in released()] == ["pay"]  # the manual one only


class TestCommand:
    def test_open_for_a_duration(self, pay, clock):
        out = run("open", "pay", "--for", "15m", "--reason", "maintenance")
        until = now(clock) + timedelta(minutes=15)
        assert f"Forced open pay: now forced_open until {until.isoformat()}" in out
        assert BreakerPolicy.objects.get(name="pay").forced_until == until

    def test_open_until_a_time(self, pay):
        run("open", "pay", "--until", "2031-05-01T18:00+02:00")
        expected = datetime(2031, 5, 1, 16, 0, tzinfo=UTC)
        assert BreakerPolicy.objects.get(name="pay").forced_until == expected

    @pytest.mark.parametrize(
        "args",
        [
            ["--until", "2020-01-01T00:00Z"],  # the past (the manual clock is in 2023)
            ["--until", "tomorrow"],
            ["--for", "5x"],
            ["--for", ""],
            ["--for", "1h", "--until", "2031-01-01T00:00Z"],
        ],
    )
    def test_bad_values_exit_2_and_change_nothing(self, pay, capsys, args):
        code, err = exit_code(capsys, "open", "pay", *args)
        assert code == 2, err
        assert BreakerPolicy.objects.get(name="pay").mode == "enforced"
        assert not CircuitEvent.objects.exists()


class TestAdmin:
    URL = "/admin/resilience/breakerpolicy/{}/{}/"

    def test_force_open_for_15_minutes(self, pay, clock, admin_client):
        html = admin_client.get(self.URL.format(pay.pk, "change")).content.decode()
        assert 'name="duration"' in html and 'value="15m"' in html and 'name="until"' in html
        response = admin_client.post(
            self.URL.format(pay.pk, "force-open"), {"reason": "deploy", "duration": "15m"}
        )
        assert response.status_code == 302
        row = BreakerPolicy.objects.get(name="pay")
        assert (row.mode, row.forced_until) == ("forced_open", now(clock) + timedelta(minutes=15))
        assert "Until:" in LogEntry.objects.get().change_message

    def test_force_open_until_a_time(self, pay, admin_client):
        data = {"duration": "until", "until": "2031-05-01T18:00"}
        admin_client.post(self.URL.format(pay.pk, "force-open"), data)
        expected = datetime(2031, 5, 1, 18, 0, tzinfo=UTC)  # TIME_ZONE is UTC in the tests
        assert BreakerPolicy.objects.get(name="pay").forced_until == expected

    @pytest.mark.parametrize("until", ["", "2020-01-01T00:00", "not a time"])
    def test_a_bad_until_is_refused_and_changes_nothing(self, pay, admin_client, until):
        response = admin_client.post(
            self.URL.format(pay.pk, "force-open"), {"duration": "until", "until": until},
            follow=True,
        )  # fmt: skip
        assert "until" in response.content.decode()
        assert BreakerPolicy.objects.get(name="pay").mode == "enforced"
        assert not CircuitEvent.objects.exists() and not LogEntry.objects.exists()

    def test_the_duration_does_not_matter_to_reset(self, pay, admin_client):
        response = admin_client.post(
            self.URL.format(pay.pk, "reset"), {"duration": "until", "until": ""}
        )
        assert response.status_code == 302
        assert CircuitEvent.objects.filter(kind="reset").exists()


@pytest.mark.slow
def test_real_processes_lift_it_everywhere_once(breaker_db, settings):
    """Two real processes: each is rejected until ``until``, then let through (its own refresh
    thread noticed); the circuit nobody calls is released too; one event per circuit."""
    import json
    import os
    import subprocess
    import sys

    from django.db import connection

    from tests.support.celeryworker import ROOT

    BreakerPolicyFactory(name="pay", failure_threshold=2)
    BreakerPolicyFactory(name="idle", failure_threshold=2)
    until = datetime.now(UTC) + timedelta(seconds=3)
    breaker("pay").force_open(until=until)
    breaker("idle").force_open(until=until)
    state = {**settings.RESILIENCE, "POLICY_REFRESH_SECONDS": 0.2}
    state.pop("OPTIONS", None)  # the manual clock stays in this process
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.procsettings",
        "PYTHONPATH": str(ROOT),
        "RESILIENCE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "RESILIENCE_TEST_SETTINGS": json.dumps(state),
    }
    procs = [
        subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "tests.support.killswitch", "pay", "30"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for result in results:
        assert result["rejected"] > 0 and result["first_ok_at"] is not None, result
        late = result["first_ok_at"] - until.timestamp()
        assert 0 <= late < 2.0, late  # within a refresh interval (0.2 s) plus start-up slack
    assert set(BreakerPolicy.objects.values_list("name", "mode")) == {
        ("pay", "enforced"),
        ("idle", "enforced"),
    }
    assert sorted(released()) == [("idle", None), ("pay", None)]
