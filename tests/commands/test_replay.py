"""manage.py resilience replay: a recorded story replayed (memory backend), output, bad input."""

import pytest

from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.commands.helpers import exit_code, run, run_json
from tests.factories import BreakerPolicyFactory
from tests.support import replaystory

pytestmark = pytest.mark.usefixtures("breaker_db")
NAME = "replay-story"


@pytest.fixture
def story(breaker_db, clock):
    BreakerPolicyFactory(name=NAME, **replaystory.POLICY)
    registry.refresh()
    replaystory.record(NAME, clock, breaker_db)


@pytest.mark.usefixtures("story")
class TestReplay:
    def test_the_current_policy_reproduces_the_recorded_openings(self):
        report = run_json("replay", NAME)
        assert set(report) == {"circuit", "hours", "actual", "proposed"}
        assert (report["circuit"], report["hours"]) == (NAME, 1)
        actual, proposed = report["actual"], report["proposed"]
        assert CircuitEvent.objects.filter(circuit=NAME, kind="opened").count() == 1
        assert actual["opened"] == proposed["opened"] == 1
        assert actual["open_seconds"] == proposed["open_seconds"] == 60.5  # 32.5 s to 93 s
        assert actual["rejected"] == proposed["rejected"] == 12
        assert (actual["calls"], actual["failures"]) == (proposed["calls"], 9) == (49, 9)
        assert proposed["estimated"] == 0
        assert (proposed["changed"], proposed["not_replayed"]) == ({}, [])

    def test_a_stricter_policy_gives_the_openings_worked_out_by_hand(self):
        # The buckets recorded here are tests/test_replay.py's STORY; its
        # test_a_stricter_policy_opens_where_worked_out_by_hand works these numbers out:
        # opened at 16.25 s (the 3rd of the 4 failures at 10-20 s), 33 calls refused, closed by
        # the success at 96.5 s.
        report = run_json(
            "replay", NAME, "--set", "failure_threshold=3", "--set", "recovery_timeout=80"
        )
        proposed = report["proposed"]
        assert (proposed["opened"], proposed["rejected"], proposed["open_seconds"]) == (
            1,
            33,
            80.25,
        )
        assert proposed["changed"] == {"failure_threshold": 3, "recovery_timeout": 80.0}
        assert report["actual"]["opened"] == 1  # what happened does not change

    def test_fields_a_replay_cannot_play_are_named(self):
        report = run_json("replay", NAME, "--set", "slow_call_ms=200", "--set", "critical=True")
        assert report["proposed"]["not_replayed"] == ["critical", "slow_call_ms"]
        assert report["proposed"]["opened"] == 1

    def test_text_output(self):
        text = run("replay", NAME, "--hours", "0.5", "--set", "failure_threshold=3")
        assert f"Replay of '{NAME}' over the last 0.5 h" in text
        assert "10-second buckets" in text
        assert "Proposed: failure_threshold=3." in text
        lines = {line.split("  ")[0]: line.split() for line in text.splitlines()}
        assert lines["openings"][-2:] == ["1", "2"]

    def test_nothing_is_saved(self):
        before = BreakerPolicy.objects.values().get(name=NAME)
        run_json("replay", NAME, "--set", "failure_threshold=3", "--set", "mode=monitor")
        assert BreakerPolicy.objects.values().get(name=NAME) == before
        assert registry.get(NAME).policy.failure_threshold == 5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--set", "nope=1"], 2, "nope: Unknown policy field"),
        (["--set", "name=other"], 2, "name: Unknown policy field"),
        (["--set", "failure_threshold"], 2, "give FIELD=VALUE"),
        (["--set", "=3"], 2, "give FIELD=VALUE"),
        (["--set", "failure_threshold=three"], 2, "failure_threshold:"),
        (["--set", "failure_threshold=2.5"], 2, "failure_threshold:"),
        (["--set", "failure_threshold=nan"], 2, "failure_threshold:"),
        (["--set", "failure_threshold=-1"], 2, "failure_threshold:"),
        (["--set", "failure_threshold=99999999999999999999"], 2, "failure_threshold:"),
        (["--set", "recovery_timeout=nan"], 2, "recovery_timeout:"),
        (["--set", "recovery_timeout=inf"], 2, "recovery_timeout:"),
        (["--set", "recovery_timeout=1e400"], 2, "recovery_timeout:"),
        (["--set", "recovery_timeout="], 2, "recovery_timeout:"),
        (["--set", "max_recovery_timeout=10"], 2, "max_recovery_timeout: Must be at least"),
        (["--set", "failure_threshold=0"], 2, "Enable at least one trip rule"),
        (["--set", "mode=sideways"], 2, "mode:"),
        (["--set", "critical=maybe"], 2, "critical:"),
        (["--set", "alert_recipients=not-an-address"], 2, "alert_recipients:"),
        (["--hours", "0"], 2, "--hours '0'"),
        (["--hours", "-1"], 2, "--hours '-1'"),
        (["--hours", "nan"], 2, "--hours 'nan'"),
        (["--hours", "inf"], 2, "--hours 'inf'"),
        (["--hours", "169"], 2, "at most 168"),
        (["--hours", "six"], 2, "--hours 'six'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(capsys, args, code, message):
    BreakerPolicyFactory(name=NAME, **replaystory.POLICY)
    before = BreakerPolicy.objects.values().get(name=NAME)
    status, err = exit_code(capsys, "replay", NAME, *args)
    assert status == code
    assert message in err
    assert BreakerPolicy.objects.values().get(name=NAME) == before
    assert not CircuitEvent.objects.exists()


def test_an_unknown_circuit(capsys):
    status, err = exit_code(capsys, "replay", "no-such-circuit", "--set", "failure_threshold=3")
    assert status == 1
    assert "Unknown circuit(s): 'no-such-circuit'" in err
    assert not BreakerPolicy.objects.exists()


def test_a_huge_value_is_not_echoed_back_in_full(capsys):
    """Django's validation messages quote the value given: a 100 kB one stays out of the error."""
    BreakerPolicyFactory(name=NAME, **replaystory.POLICY)
    status, err = exit_code(capsys, "replay", NAME, "--set", "failure_threshold=" + "x" * 100_000)
    assert status == 2
    assert "failure_threshold:" in err
    assert len(err) < 1_000
