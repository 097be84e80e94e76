"""The change page: fieldsets, validation messages, audited edits that keep the circuit's state."""

import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from resilience import breaker
from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.admin.test_permissions import url
from tests.factories import BreakerPolicyFactory, CircuitEventFactory
from tests.security.admin_forms import form_data

pytestmark = pytest.mark.django_db


def test_fieldsets_with_units_and_help(superuser, client_for):
    policy = BreakerPolicyFactory(name="payments-api")
    response = client_for(superuser).get(url(policy))
    headings = [fieldset.name for fieldset in response.context["adminform"]]
    assert headings == [
        None, "Trip rules", "Isolation", "Recovery", "Exceptions", "Retries", "Alerts", "Audit"
    ]  # fmt: skip
    html = response.content.decode()
    for text in ("Slow call (ms)", "Recovery timeout (seconds)", "Failure rate threshold (%)",
                 "Consecutive failures that open the circuit. 0 turns this rule off.",
                 "Max concurrent calls", "Call timeout (ms)", "0 = no cap."):  # fmt: skip
        assert text in html
    assert 'name="name"' not in html  # renaming would orphan the state keyed by the name


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"failure_rate_threshold": 150}, "failure_rate_threshold", "less than or equal to 100"),
        (
            {"recovery_timeout": 120, "max_recovery_timeout": 60},
            "max_recovery_timeout",
            "Must be at least the recovery timeout (120.0 s).",
        ),  # fmt: skip
        (
            {"failure_threshold": 0, "failure_rate_threshold": 0},
            "failure_threshold",
            "Enable at least one trip rule",
        ),  # fmt: skip
        ({"ignore_exceptions": "not a path"}, "ignore_exceptions", "is not a dotted path"),
        ({"alert_recipients": "oncall@example.com\nnope"}, "alert_recipients", "nope"),
        (
            {"retry_backoff_ms": 500, "retry_max_backoff_ms": 100},
            "retry_max_backoff_ms",
            "Must be at least the retry backoff.",
        ),  # fmt: skip
        ({"window_seconds": "abc"}, "window_seconds", "Enter a whole number."),
    ],
)
def test_validation_errors_say_what_is_wrong(superuser, client_for, changes, field, message):
    policy = BreakerPolicyFactory(name="payments-api")
    response = client_for(superuser).post(url(policy), form_data(policy, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message in error for error in errors[field]), errors
    assert message.split("(")[0] in response.content.decode()
    assert BreakerPolicy.objects.get(pk=policy.pk).version == policy.version
    assert not CircuitEvent.objects.exists()


def test_edit_keeps_the_state_and_is_audited(superuser, client_for, trip, clock):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=5, recovery_timeout=60)
    trip(policy)
    clock.advance(10)
    before = breaker("payments-api").snapshot()
    assert before["state"] == "open"

    response = client_for(superuser).post(
        url(policy),
        form_data(policy, failure_threshold=2, recovery_timeout=30, change_reason="INC-42 tighter"),
    )
    assert response.status_code == 302

    after = breaker("payments-api").snapshot()
    assert after["state"] == "open"
    assert after["generation"] == before["generation"]  # no reset, no new transition
    assert after["consecutive_failures"] == before["consecutive_failures"]
    assert registry.get("payments-api").policy.failure_threshold == 2  # in force here at once
    saved = BreakerPolicy.objects.get(pk=policy.pk)
    assert saved.version > policy.version

    event = CircuitEvent.objects.get(circuit="payments-api")
    assert (event.kind, event.actor, event.policy_id) == ("policy_changed", superuser, policy.pk)
    assert "failure threshold: 5 → 2" in event.reason.lower()
    assert "recovery timeout (seconds): 60.0 → 30.0" in event.reason.lower()
    assert event.reason.endswith("Reason: INC-42 tighter")

    entry = LogEntry.objects.get(object_id=str(policy.pk))
    assert (entry.user, entry.action_flag) == (superuser, CHANGE)
    assert "failure threshold: 5 → 2" in entry.get_change_message().lower()
    assert "INC-42 tighter" in entry.get_change_message()


def test_saving_without_changes_records_no_event(superuser, client_for):
    policy = BreakerPolicyFactory(name="payments-api")
    assert client_for(superuser).post(url(policy), form_data(policy)).status_code == 302
    assert not CircuitEvent.objects.exists()
    assert LogEntry.objects.get().get_change_message() == "No fields changed."


def test_adding_a_policy_is_audited(superuser, client_for):
    data = form_data(BreakerPolicy(name="x"), name="new-api", change_reason="new provider")
    response = client_for(superuser).post("/admin/resilience/breakerpolicy/add/", data)
    assert response.status_code == 302
    event = CircuitEvent.objects.get(circuit="new-api")
    assert event.kind == "policy_changed" and event.reason == "Created. Reason: new provider"


def test_mode_needs_the_force_permission(make_user, client_for):
    policy = BreakerPolicyFactory(name="payments-api")
    editor = make_user("editor", "resilience.view_breakerpolicy", "resilience.change_breakerpolicy")
    client = client_for(editor)
    assert 'name="mode"' not in client.get(url(policy)).content.decode()
    response = client.post(url(policy), form_data(policy, mode="forced_open", minimum_calls=20))
    assert response.status_code == 302
    saved = BreakerPolicy.objects.get(pk=policy.pk)
    assert (saved.mode, saved.minimum_calls) == ("enforced", 20)


def test_live_panel_timeline_and_latest_events(superuser, client_for, trip):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=2)
    trip(policy)
    CircuitEventFactory(policy=policy, error="<script>alert('x')</script>", reason="a\nb")
    html = client_for(superuser).get(url(policy)).content.decode()
    panel = html[html.index('id="live-state"') : html.index('id="outcomes"')]
    assert 'class="rs-badge rs-open"' in panel
    assert "2 / 2" in panel and "100 % of 2" in panel and "in 1\u00a0min 0\u00a0s" in panel
    assert '<svg class="rs-timeline"' in panel and "<script" not in panel
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in panel
    assert "?circuit=payments-api" in panel  # link to all its events
    assert "Reset" in panel and "Force open" in panel and "Release</button>" not in panel


@pytest.mark.parametrize(
    ("fields", "held", "in_flight"),
    [
        ({"max_concurrent_calls": 2}, 2, ">2 / 2</span>"),
        ({"call_timeout_ms": 500}, 1, '<span class="rs-in-flight">1</span>'),
        ({}, 0, '<span title="not counted: no cap, no deadline">-</span>'),
    ],
)
def test_live_panel_shows_calls_in_flight_and_the_cap(
    superuser, client_for, fields, held, in_flight
):
    policy = BreakerPolicyFactory(name="payments-api", **fields)
    backend, engine_policy = get_backend(), policy_from_values(policy)
    for _ in range(held):
        assert backend.acquire("payments-api", engine_policy).slot is not None
    html = client_for(superuser).get(url(policy)).content.decode()
    panel = html[html.index('id="live-state"') : html.index('id="outcomes"')]
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", panel))
    assert in_flight in facts["in flight / cap"]
    assert ("rs-full" in facts["in flight / cap"]) == bool(fields.get("max_concurrent_calls"))


def test_change_page_after_invalid_post_shows_the_stored_state(superuser, client_for):
    policy = BreakerPolicyFactory(name="payments-api", mode="forced_open")
    response = client_for(superuser).post(
        url(policy), form_data(policy, mode="enforced", failure_rate_threshold=999)
    )
    assert response.status_code == 200
    assert response.context["live"].state == "forced_open"  # not the rejected form values
