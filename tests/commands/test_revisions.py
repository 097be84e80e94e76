"""manage.py resilience revisions|revert, and open/release from the command line as revisions."""

import json

import pytest

from resilience.models import BreakerPolicy, CircuitEvent, PolicyRevision
from tests.commands.helpers import exit_code, run, run_json
from tests.factories import BreakerPolicyFactory, UserFactory

pytestmark = pytest.mark.usefixtures("breaker_db")


@pytest.fixture
def pay():
    policy = BreakerPolicyFactory(name="pay", failure_threshold=5)
    policy.failure_threshold = 2
    policy.save()
    return policy


def revisions(policy):
    return list(PolicyRevision.objects.filter(policy=policy).order_by("id"))


def test_open_and_release_are_command_revisions_with_the_actor(pay):
    UserFactory(username="alice")
    run("open", "pay", "--reason", "provider down", "--actor", "alice")
    run("release", "pay", "--actor", "alice")
    forced, released = revisions(pay)[-2:]
    assert (forced.source, forced.actor.username, forced.reason) == (
        "command",
        "alice",
        "provider down",
    )
    assert forced.changes == {"mode": ["enforced", "forced_open"]}
    assert released.changes == {"mode": ["forced_open", "enforced"]}


def test_revisions_lists_the_diff_newest_first(pay):
    text = run("revisions", "pay")
    lines = text.splitlines()
    assert lines[0].startswith(f"#{revisions(pay)[-1].pk} v")
    assert "    failure threshold: 5 → 2" in lines
    listed = run_json("revisions", "pay", "--limit", "1")
    assert listed["circuit"] == "pay"
    assert [r["changes"] for r in listed["revisions"]] == [{"failure_threshold": [5, 2]}]


def test_revert_from_the_command_line(pay):
    UserFactory(username="bob")
    target = revisions(pay)[0]
    answer = run_json("revert", "pay", str(target.pk), "--reason", "undo", "--actor", "bob")
    assert answer["revision"]["reverted_from"] == target.pk
    assert answer["revision"]["changes"] == {"failure_threshold": [2, 5]}
    assert BreakerPolicy.objects.get(name="pay").failure_threshold == 5
    made = revisions(pay)[-1]
    assert (made.source, made.actor.username, made.reason) == ("command", "bob", "undo")
    event = CircuitEvent.objects.get(kind="policy_changed")
    assert event.actor.username == "bob" and "undo" in event.reason


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["revert", "pay", "999999"], 1, "Nothing was reverted: There is no revision 999999."),
        (["revert", "nope", "1"], 1, "Unknown circuit(s): 'nope'"),
        (["revert", "pay", "abc"], 2, "invalid int value"),
        (["revert", "pay", "{search}"], 1, "belongs to circuit search, not to pay"),
        (["revert", "pay", "{current}"], 1, "already has the values"),
        (["revisions", "pay", "--limit", "0"], 2, "--limit must be at least 1"),
    ],
)
def test_bad_input_is_a_clear_error_and_saves_nothing(pay, capsys, args, status, message):
    search = BreakerPolicyFactory(name="search")
    ids = {"search": revisions(search)[0].pk, "current": revisions(pay)[-1].pk}
    args = [a.format(**ids) for a in args]
    count, version = PolicyRevision.objects.count(), BreakerPolicy.objects.get(name="pay").version
    code, err = exit_code(capsys, *args)
    assert code == status and message in err, err
    assert PolicyRevision.objects.count() == count
    assert BreakerPolicy.objects.get(name="pay").version == version
    assert not CircuitEvent.objects.exists()


def test_json_output_is_valid(pay):
    assert json.loads(run("revisions", "pay", "--json"))["revisions"][0]["source"] == "code"
