"""Bulk reset / force open / release: row by row, audited, invalidating, no bulk delete."""

import django
import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry

from resilience import breaker
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory
from tests.support.deprecations import package_deprecations

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resilience/breakerpolicy/"


@pytest.fixture
def three(trip):
    policies = [BreakerPolicyFactory(name=n, failure_threshold=1) for n in ("a-api", "b-api")]
    for policy in policies:
        trip(policy)
    policies.append(BreakerPolicyFactory(name="c-api"))
    return policies


def run(client, action, policies, reason=""):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [p.pk for p in policies], "reason": reason},
        follow=True,
    )


def test_bulk_reset(superuser, client_for, three):
    response = run(client_for(superuser), "reset_circuits", three[:2], reason="all clear")
    assert [breaker(p.name).state for p in three] == ["closed", "closed", "closed"]
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["2 circuits were reset: closed, counters cleared."]
    events = CircuitEvent.objects.filter(kind="reset")
    assert sorted(events.values_list("circuit", flat=True)) == ["a-api", "b-api"]
    assert {(e.actor, e.reason) for e in events} == {(superuser, "all clear")}
    entries = LogEntry.objects.filter(user=superuser)
    assert sorted(entries.values_list("object_repr", flat=True)) == ["a-api", "b-api"]
    assert all("all clear" in entry.get_change_message() for entry in entries)


def test_bulk_force_open_and_release_reach_the_policy_cache(superuser, client_for, three):
    client = client_for(superuser)
    assert registry.get("c-api").mode == "enforced"  # cached in this process
    response = run(client, "force_open_circuits", three, reason="maintenance")
    assert [m.message for m in response.context["messages"]] == [
        "3 circuits are forced open: every call is rejected until released."
    ]
    assert set(BreakerPolicy.objects.values_list("mode", flat=True)) == {"forced_open"}
    assert registry.get("c-api").mode == "forced_open"  # invalidated, not stale
    assert breaker("c-api").state == "forced_open"
    assert CircuitEvent.objects.filter(kind="forced_open", reason="maintenance").count() == 3

    response = run(client, "release_circuits", three[2:])
    assert [m.message for m in response.context["messages"]] == [
        "1 circuit was released: back to enforced mode."
    ]
    assert registry.get("c-api").mode == "enforced"
    assert LogEntry.objects.count() == 4


def test_bulk_force_open_keeps_the_circuit_state(superuser, client_for, three):
    before = breaker("a-api").snapshot()
    run(client_for(superuser), "force_open_circuits", three[:1])
    run(client_for(superuser), "release_circuits", three[:1])
    after = breaker("a-api").snapshot()
    assert (after["state"], after["generation"]) == (before["state"], before["generation"])


def test_bulk_delete_is_not_offered(superuser, client_for, three):
    client = client_for(superuser)
    assert "delete_selected" not in client.get(CHANGELIST).content.decode()
    run(client, "delete_selected", three)
    assert BreakerPolicy.objects.count() == 3


def test_the_actions_override_takes_each_django_s_signature(superuser, rf):
    """Django 6.1 calls get_actions(request, action_location=...) and warns about an override
    without the parameter; earlier versions call get_actions(request)."""
    model_admin = admin.site._registry[BreakerPolicy]
    request = rf.get(CHANGELIST)
    request.user = superuser
    with package_deprecations() as found:
        names = [name for name, _label in model_admin.get_action_choices(request)]
        by_name = set(model_admin.get_actions(request))
    assert found == []
    assert "delete_selected" not in names and "delete_selected" not in by_name
    assert {"reset_circuits", "force_open_circuits", "release_circuits"} <= set(names) & by_name
    if django.VERSION >= (6, 1):
        from django.contrib.admin.options import ActionLocation

        for where in ActionLocation:
            with package_deprecations() as found:
                actions = model_admin.get_actions(request, action_location=where)
            assert found == [] and "delete_selected" not in actions


def test_single_delete_goes_through_the_model_and_invalidates(superuser, client_for, three):
    policy = three[2]
    assert registry.get("c-api").pk == policy.pk
    response = client_for(superuser).post(f"{CHANGELIST}{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not BreakerPolicy.objects.filter(name="c-api").exists()
    assert registry.get("c-api").pk is None  # this process runs on the defaults at once
    event = CircuitEvent.objects.get(circuit="c-api")
    assert (event.kind, event.actor) == ("policy_changed", superuser)
    assert event.reason == "Policy deleted."


def test_a_failing_backend_is_reported_not_a_500(superuser, client_for, three, monkeypatch):
    from resilience.backends import get_backend

    def down(name, policy):
        raise ConnectionError("backend down")

    monkeypatch.setattr(get_backend(), "reset", down)
    response = run(client_for(superuser), "reset_circuits", three[:1])
    assert response.status_code == 200
    assert [m.message for m in response.context["messages"]] == [
        "Reset of “a-api” failed: ConnectionError"
    ]
    assert not LogEntry.objects.exists()
