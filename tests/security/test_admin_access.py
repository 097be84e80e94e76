"""Every state-changing admin endpoint × every kind of user who may not use it: nothing changes.

The admin suite tests each permission on its own; this is the exhaustive matrix (anonymous,
staff without permissions, view-only, reset-only, force-only; buttons, bulk actions, edits,
deletes; GET, POST, POST without a CSRF token), checking the circuit, the policy row, the
events and the admin log after every request.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client

from resilience import breaker, events
from resilience.admin.live import policy_from_values
from resilience.models import BreakerPolicy, CircuitEvent
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.security.admin_forms import form_data

pytestmark = pytest.mark.django_db

BASE = "/admin/resilience/breakerpolicy/"
PERMS = {
    "anonymous": None,
    "staff": (),
    "viewer": ("view_breakerpolicy",),
    "resetter": ("reset_circuit",),
    "forcer": ("force_circuit",),
}
ALLOWED = {
    "resetter": {"reset", "bulk-reset"},
    "forcer": {"force-open", "release", "bulk-force-open", "bulk-release"},
}
ENDPOINTS = (
    "reset", "force-open", "release", "bulk-reset", "bulk-force-open", "bulk-release",
    "edit", "delete", "add",
)  # fmt: skip
BULK = {
    "bulk-reset": "reset_circuits",
    "bulk-force-open": "force_open_circuits",
    "bulk-release": "release_circuits",
}


@pytest.fixture
def circuit(memory_backend):
    """An open circuit, tripped on the backend directly: no background event writer involved."""
    policy = BreakerPolicyFactory(name="guarded", failure_threshold=1, recovery_timeout=60)
    engine_policy = policy_from_values(policy)
    ticket = memory_backend.acquire("guarded", engine_policy)
    memory_backend.record(ticket, engine_policy, success=False, duration_ms=1)
    assert breaker("guarded").state == "open"
    yield policy
    events.flush(timeout=5)
    events.discard()


def client_as(kind: str, **kwargs) -> Client:
    client = Client(**kwargs)
    if PERMS[kind] is not None:
        user = UserFactory(username=kind)
        for codename in PERMS[kind]:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        client.force_login(user)
    return client


def request_for(endpoint: str, policy: BreakerPolicy) -> tuple[str, dict]:
    if endpoint in BULK:
        return BASE, {"action": BULK[endpoint], "_selected_action": [policy.pk], "reason": "r"}
    if endpoint == "edit":
        return f"{BASE}{policy.pk}/change/", form_data(policy, failure_threshold=99)
    if endpoint == "delete":
        return f"{BASE}{policy.pk}/delete/", {"post": "yes"}
    if endpoint == "add":
        return f"{BASE}add/", form_data(policy, name="sneaky")
    return f"{BASE}{policy.pk}/{endpoint}/", {"reason": "r"}


def state(policy: BreakerPolicy) -> tuple:
    row = BreakerPolicy.objects.filter(pk=policy.pk).values().first()
    return (
        breaker("guarded").state,
        row and {k: v for k, v in row.items() if k != "updated_at"},
        BreakerPolicy.objects.count(),
        CircuitEvent.objects.exclude(kind="opened").count(),
        LogEntry.objects.count(),
    )


CASES = [
    (kind, endpoint)
    for kind in PERMS
    for endpoint in ENDPOINTS
    if endpoint not in ALLOWED.get(kind, ())
]


@pytest.mark.parametrize(("kind", "endpoint"), CASES)
def test_forbidden_requests_change_nothing(circuit, kind, endpoint):
    url, data = request_for(endpoint, circuit)
    client = client_as(kind)
    before = state(circuit)
    for response in (client.get(url), client.post(url, data)):
        if kind == "anonymous":
            assert response.status_code == 302 and "/login/" in response["Location"]
        else:
            assert response.status_code in (200, 302, 403, 405), response.status_code
        assert state(circuit) == before, (kind, endpoint, response.status_code)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_posts_without_a_csrf_token_are_refused_even_for_superusers(circuit, endpoint):
    url, data = request_for(endpoint, circuit)
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="root", is_superuser=True))
    before = state(circuit)
    assert client.post(url, data).status_code == 403
    assert client.post(url, {**data, "csrfmiddlewaretoken": "forged" * 6}).status_code == 403
    assert state(circuit) == before


@pytest.mark.parametrize("action", ["reset", "force-open", "release"])
def test_get_on_a_button_url_changes_nothing_even_for_superusers(circuit, action):
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))
    before = state(circuit)
    assert client.get(f"{BASE}{circuit.pk}/{action}/").status_code == 405
    assert state(circuit) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_same_requests_do_work_for_a_superuser(circuit, endpoint):
    # The control: each request above is one that would change something if it were allowed.
    url, data = request_for(endpoint, circuit)
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))
    before = state(circuit)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert state(circuit) != before
