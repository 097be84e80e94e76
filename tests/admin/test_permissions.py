"""Who may see and press what: custom permissions, 403s, POST-only buttons and CSRF."""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from resilience import breaker
from resilience.models import BreakerPolicy, CircuitEvent
from tests.factories import BreakerPolicyFactory
from tests.security.admin_forms import form_data

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resilience/breakerpolicy/"


def url(policy, action="change"):
    return f"{CHANGELIST}{policy.pk}/{action}/"


@pytest.fixture
def tripped(trip):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=2)
    trip(policy)
    assert breaker("payments-api").state == "open"
    return policy


def test_operator_with_only_reset_permission_resets_but_cannot_edit_or_force(
    make_user, client_for, tripped
):
    operator = make_user("oncall", "resilience.reset_circuit")
    client = client_for(operator)

    page = client.get(url(tripped))
    assert page.status_code == 200  # reset_circuit implies seeing the policy
    html = page.content.decode()
    assert f'formaction="{url(tripped, "reset")}"' in html
    assert url(tripped, "force-open") not in html
    assert 'name="_save"' not in html  # read-only form: no thresholds to edit

    edit = client.post(url(tripped), form_data(tripped, failure_threshold=1))
    assert edit.status_code == 403
    assert BreakerPolicy.objects.get(pk=tripped.pk).failure_threshold == 2

    assert client.post(url(tripped, "force-open"), {"reason": "x"}).status_code == 403
    assert client.post(url(tripped, "release"), {"reason": "x"}).status_code == 403
    assert BreakerPolicy.objects.get(pk=tripped.pk).mode == "enforced"

    response = client.post(url(tripped, "reset"), {"reason": "upstream is back"})
    assert response.status_code == 302
    assert response["Location"] == url(tripped)
    assert breaker("payments-api").state == "closed"
    event = CircuitEvent.objects.get(circuit="payments-api", kind="reset")
    assert (event.actor, event.reason) == (operator, "upstream is back")
    entry = LogEntry.objects.get(object_id=str(tripped.pk))
    assert entry.user == operator
    assert "upstream is back" in entry.get_change_message()

    messages = [str(m) for m in client.get(url(tripped)).context["messages"]]
    assert any("was reset" in m for m in messages)


def test_operator_sees_only_the_reset_bulk_action(make_user, client_for, tripped):
    client = client_for(make_user("oncall", "resilience.reset_circuit"))
    html = client.get(CHANGELIST).content.decode()
    assert 'value="reset_circuits"' in html
    assert "force_open_circuits" not in html
    assert "release_circuits" not in html
    response = client.post(
        CHANGELIST,
        {"action": "force_open_circuits", "_selected_action": [tripped.pk], "reason": ""},
    )
    assert response.status_code in (200, 302)
    assert BreakerPolicy.objects.get(pk=tripped.pk).mode == "enforced"
    assert not CircuitEvent.objects.filter(kind="forced_open").exists()


def test_force_permission_allows_force_open_and_release(make_user, client_for, tripped):
    client = client_for(make_user("sre", "resilience.force_circuit"))
    html = client.get(url(tripped)).content.decode()
    assert url(tripped, "force-open") in html
    assert url(tripped, "reset") not in html

    assert client.post(url(tripped, "force-open"), {"reason": "kill"}).status_code == 302
    assert BreakerPolicy.objects.get(pk=tripped.pk).mode == "forced_open"
    html = client.get(url(tripped)).content.decode()
    assert url(tripped, "release") in html and url(tripped, "force-open") not in html

    assert client.post(url(tripped, "reset"), {}).status_code == 403
    assert client.post(url(tripped, "release"), {"reason": "fixed"}).status_code == 302
    assert BreakerPolicy.objects.get(pk=tripped.pk).mode == "enforced"
    kinds = list(
        CircuitEvent.objects.filter(circuit="payments-api")
        .order_by("created_at", "id")
        .values_list("kind", "reason")
    )
    assert kinds == [("forced_open", "kill"), ("released", "fixed")]


def test_view_only_user_sees_no_buttons_and_no_actions(make_user, client_for, tripped):
    client = client_for(make_user("viewer", "resilience.view_breakerpolicy"))
    page = client.get(url(tripped)).content.decode()
    assert "rs-controls" not in page and "formaction" not in page
    assert "Live state" in page  # but the state itself is visible
    changelist = client.get(CHANGELIST).content.decode()
    assert 'name="action"' not in changelist and "action-select" not in changelist
    for action in ("reset", "force-open", "release"):
        assert client.post(url(tripped, action), {"reason": "x"}).status_code == 403
    assert breaker("payments-api").state == "open"


def test_staff_without_permissions_gets_403_everywhere(make_user, client_for, tripped):
    client = client_for(make_user("intern"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(url(tripped)).status_code == 403
    for action in ("reset", "force-open", "release"):
        assert client.post(url(tripped, action), {"reason": "x"}).status_code == 403
    assert breaker("payments-api").state == "open"
    assert not LogEntry.objects.exists()


def test_anonymous_users_are_sent_to_the_login_page(tripped):
    response = Client().post(url(tripped, "reset"), {"reason": "x"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert breaker("payments-api").state == "open"


@pytest.mark.parametrize("action", ["reset", "force-open", "release"])
def test_get_never_changes_state(superuser, client_for, tripped, action):
    response = client_for(superuser).get(url(tripped, action))
    assert response.status_code == 405
    assert breaker("payments-api").state == "open"
    assert BreakerPolicy.objects.get(pk=tripped.pk).mode == "enforced"
    assert not CircuitEvent.objects.exists()


def test_buttons_need_a_csrf_token(superuser, client_for, tripped):
    client = client_for(superuser, enforce_csrf_checks=True)
    assert client.post(url(tripped, "reset"), {"reason": "x"}).status_code == 403
    assert client.post(url(tripped, "force-open"), {"reason": "x"}).status_code == 403
    assert breaker("payments-api").state == "open"

    client.get(url(tripped))  # sets the CSRF cookie, as a browser would
    token = client.cookies["csrftoken"].value
    response = client.post(url(tripped, "reset"), {"reason": "x", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert breaker("payments-api").state == "closed"


def test_bulk_actions_need_a_csrf_token(superuser, client_for, tripped):
    client = client_for(superuser, enforce_csrf_checks=True)
    response = client.post(
        CHANGELIST, {"action": "reset_circuits", "_selected_action": [tripped.pk]}
    )
    assert response.status_code == 403
    assert breaker("payments-api").state == "open"


def test_unknown_policy_is_404_for_allowed_users(superuser, client_for):
    response = client_for(superuser).post(f"{CHANGELIST}999999/reset/", {"reason": "x"})
    assert response.status_code == 404


def test_overlong_reason_is_refused_with_a_message(superuser, client_for, tripped):
    client = client_for(superuser)
    response = client.post(url(tripped, "reset"), {"reason": "x" * 501}, follow=True)
    assert breaker("payments-api").state == "open"
    messages = [str(m) for m in response.context["messages"]]
    assert any("at most 500 characters" in m for m in messages), messages
