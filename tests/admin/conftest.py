"""Fixtures for admin tests: users with exactly the permissions a test names, tripped circuits."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from resilience import events
from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.models import BreakerPolicy
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _admin_backend(memory_backend):
    """Every admin test runs on the memory backend and the manual clock."""
    yield memory_backend
    events.flush(timeout=5)
    events.discard()


@pytest.fixture
def make_user(db):
    """``make_user("ops", "resilience.reset_circuit")``: a staff user with only these perms."""

    def make(username: str, *perms: str, superuser: bool = False):
        user = UserFactory(username=username, is_superuser=superuser)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user

    return make


@pytest.fixture
def client_for():
    def login(user, **kwargs) -> Client:
        client = Client(**kwargs)
        client.force_login(user)
        return client

    return login


@pytest.fixture
def superuser(make_user):
    return make_user("root", superuser=True)


@pytest.fixture
def trip():
    """``trip(policy)``: fail calls straight on the configured backend until the circuit opens.

    Bypasses the decorators on purpose: no background event writer is involved.
    """

    def trip(policy: BreakerPolicy, failures: int | None = None) -> None:
        backend, engine_policy = get_backend(), policy_from_values(policy)
        for _ in range(failures or policy.failure_threshold):
            ticket = backend.acquire(policy.name, engine_policy)
            backend.record(ticket, engine_policy, success=False, duration_ms=1)

    return trip
