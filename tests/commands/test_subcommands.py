"""manage.py resilience: every subcommand, --json output, exit codes and unknown circuits."""

import pytest

from resilience import breaker, events
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.commands.helpers import exit_code, run, run_json
from tests.factories import BreakerPolicyFactory, UserFactory

pytestmark = pytest.mark.usefixtures("breaker_db")


def trip(name):
    for _ in range(BreakerPolicy.objects.get(name=name).failure_threshold):
        with pytest.raises(ConnectionError), breaker(name):
            raise ConnectionError("down")


@pytest.fixture
def circuits(breaker_db):
    BreakerPolicyFactory(name="payments-api", critical=True, failure_threshold=2)
    BreakerPolicyFactory(name="search")


@pytest.mark.usefixtures("circuits")
class TestStatus:
    def test_json(self):
        trip("payments-api")
        report = run_json("status")
        assert report["status"] == "degraded"
        assert report["backend"] == {"backend": "memory", "degraded": False}
        assert set(report["circuits"]) == {"payments-api", "search"}
        assert report["circuits"]["payments-api"]["state"] == "open"
        assert report["circuits"]["payments-api"]["consecutive_failures"] == 2
        assert report["circuits"]["search"]["state"] == "closed"

    def test_selected_names(self):
        assert set(run_json("status", "search")["circuits"]) == {"search"}

    def test_table(self):
        trip("payments-api")
        lines = run("status").splitlines()
        assert lines[0] == "Status: degraded; backend: memory"
        assert lines[1].split() == [
            "circuit",
            "state",
            "mode",
            "failures",
            "rate",
            "retry",
            "in",
            "in",
            "flight",
            "critical",
        ]
        assert lines[2].split()[:4] == ["payments-api", "open", "enforced", "2"]
        assert lines[2].split()[-1] == "yes"
        assert lines[3].split() == ["search", "closed", "enforced", "0", "-", "-", "-", "no"]

    def test_calls_in_flight_against_the_cap(self):
        BreakerPolicyFactory(name="capped", max_concurrent_calls=2)
        BreakerPolicyFactory(name="deadline", call_timeout_ms=2000)
        with breaker("capped"), breaker("capped"), breaker("deadline"):
            report = run_json("status")["circuits"]
            rows = {line.split()[0]: line.split() for line in run("status").splitlines()[2:]}
        assert (report["capped"]["in_flight"], report["capped"]["max_concurrent_calls"]) == (2, 2)
        assert (report["deadline"]["in_flight"], report["deadline"]["max_concurrent_calls"]) == (
            1,
            0,
        )
        assert (report["search"]["in_flight"], report["search"]["max_concurrent_calls"]) == (
            None,
            0,
        )
        assert (rows["capped"][-2], rows["deadline"][-2], rows["search"][-2]) == ("2/2", "1", "-")
        assert run_json("status", "capped")["circuits"]["capped"]["in_flight"] == 0

    def test_unknown_circuit(self, capsys):
        code, err = exit_code(capsys, "status", "search", "nope")
        assert code == 1
        assert "Unknown circuit(s): 'nope'" in err


@pytest.mark.usefixtures("circuits")
class TestControl:
    def test_reset(self):
        trip("payments-api")
        result = run_json("reset", "payments-api", "--reason", "upstream fixed")
        assert result == {
            "action": "reset",
            "circuits": {"payments-api": result["circuits"]["payments-api"]},
        }
        assert result["circuits"]["payments-api"]["state"] == "closed"
        assert breaker("payments-api").state == "closed"
        assert events.flush(timeout=10)
        event = CircuitEvent.objects.get(circuit="payments-api", kind="reset")
        assert event.reason == "upstream fixed"

    def test_open_and_release_with_an_actor(self):
        user = UserFactory(username="oncall")
        out = run("open", "search", "payments-api", "--actor", "oncall", "--reason", "incident")
        assert "Forced open search: now forced_open" in out
        assert breaker("payments-api").state == "forced_open"
        assert BreakerPolicy.objects.get(name="search").mode == "forced_open"
        assert run_json("release", "search")["circuits"]["search"]["state"] == "closed"
        assert BreakerPolicy.objects.get(name="search").mode == "enforced"
        opened = CircuitEvent.objects.filter(kind="forced_open")
        assert {e.circuit for e in opened} == {"search", "payments-api"}
        assert {e.actor for e in opened} == {user}
        assert CircuitEvent.objects.filter(kind="released", circuit="search").exists()

    @pytest.mark.parametrize("action", ["reset", "open", "release"])
    def test_unknown_circuit_changes_nothing(self, capsys, action):
        code, err = exit_code(capsys, action, "search", "no-such-circuit")
        assert code == 1
        assert "'no-such-circuit'" in err
        assert BreakerPolicy.objects.get(name="search").mode == "enforced"
        assert not CircuitEvent.objects.exists()
        assert not BreakerPolicy.objects.filter(name="no-such-circuit").exists()

    def test_unknown_actor(self, capsys):
        code, err = exit_code(capsys, "open", "search", "--actor", "ghost")
        assert code == 1
        assert "Unknown user 'ghost'" in err
        assert BreakerPolicy.objects.get(name="search").mode == "enforced"

    @pytest.mark.parametrize(
        "args", [["reset"], ["explode"], [], ["drain", "--limit", "x"], ["status", "--yaml"]]
    )
    def test_bad_arguments_exit_2(self, capsys, args):
        assert exit_code(capsys, *args)[0] == 2


def test_drain_stores_transitions_nobody_persisted(breaker_db, circuits):
    # Straight on the backend: the transition sits in the outbox, as if the process that made
    # it died before its background writer ran.
    policy = registry.get("payments-api").policy
    for _ in range(2):
        ticket = breaker_db.acquire("payments-api", policy)
        breaker_db.record(ticket, policy, False, 1)
    assert breaker_db.outbox("payments-api")
    assert not CircuitEvent.objects.exists()
    assert run_json("drain") == {"drained": 1}
    assert CircuitEvent.objects.filter(circuit="payments-api", kind="opened").count() == 1
    assert not breaker_db.outbox("payments-api")
    assert run("drain") == "Drained 0 event(s) and alert(s).\n"


def test_drain_limit_must_be_positive(capsys):
    code, err = exit_code(capsys, "drain", "--limit", "0")
    assert code == 1
    assert "--limit" in err
