"""What the browser tests do in the admin: log in, users, tripped circuits, a day of history."""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.contrib.auth.models import Permission
from django.utils import timezone

from resilience import series
from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory, UserFactory

CHANGELIST = "/admin/resilience/breakerpolicy/"


def login(page, username: str, password: str = "pw") -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def user(username, *perms, superuser=False):
    account = UserFactory(username=username, is_superuser=superuser)
    for perm in perms:
        account.user_permissions.add(Permission.objects.get(codename=perm))
    return account


def trip(policy, failures=None):
    backend, engine_policy = get_backend(), policy_from_values(policy)
    for _ in range(failures or policy.failure_threshold):
        ticket = backend.acquire(policy.name, engine_policy)
        backend.record(ticket, engine_policy, success=False, duration_ms=1)


def demo_history(policy, minute_outage=False):
    """A day of flapping for the timeline picture; with ``minute_outage``, also a one-minute
    opening 2 h ago (0.07 % of the day)."""
    now = timezone.now()
    steps = [(22, "opened", "closed", "open"), (21.9, "half_opened", "open", "half_open"),
             (21.85, "closed", "half_open", "closed"), (9, "opened", "closed", "open"),
             (8.9, "half_opened", "open", "half_open"), (8.85, "opened", "half_open", "open"),
             (8, "forced_open", "open", "forced_open"), (5, "released", "forced_open", "open"),
             (4.9, "half_opened", "open", "half_open"), (4.85, "closed", "half_open", "closed"),
             (0.02, "opened", "closed", "open")]  # fmt: skip
    if minute_outage:
        steps[-1:-1] = [(2 + 1 / 60, "opened", "closed", "open"), (2, "reset", "open", "closed")]
    for hours, kind, before, after in steps:
        CircuitEvent.objects.create(
            circuit=policy.name,
            policy=policy,
            kind=kind,
            from_state=before,
            to_state=after,
            failure_count=5 if kind == "opened" else 0,
            error="requests.exceptions.ReadTimeout: read timed out" if kind == "opened" else "",
            created_at=now - timedelta(hours=hours),
        )


def a_busy_day():
    """One circuit in every state, one at its bulkhead cap, a critical one with a day of
    history: the screenshots' scene. Returns the critical ``payments-api`` policy."""
    payments = BreakerPolicyFactory(
        name="payments-api", description="Card payments provider.", failure_threshold=5,
        recovery_timeout=120, critical=True,
    )  # fmt: skip
    demo_history(payments)
    trip(payments)
    trip(BreakerPolicyFactory(name="search", mode="monitor", failure_threshold=3))
    probing = BreakerPolicyFactory(name="geo-lookup", failure_threshold=2, recovery_timeout=0.01)
    trip(probing)
    time.sleep(0.05)
    get_backend().acquire("geo-lookup", policy_from_values(probing))  # the trial call
    BreakerPolicyFactory(name="recommendations", mode="forced_open")
    BreakerPolicyFactory(name="legacy-crm", mode="disabled")
    for name in ("email-api", "shipping-rates"):
        BreakerPolicyFactory(name=name)
    # A slow upstream at its bulkhead cap (leases of 60 s: no watchdog renews these slots).
    llm = BreakerPolicyFactory(name="llm-api", max_concurrent_calls=4, call_timeout_ms=30_000)
    for _ in range(4):
        get_backend().acquire("llm-api", policy_from_values(llm))
    an_hour_of_history({
        "payments-api": (30, 0.01, 0.6), "search": (20, 0.05, 0.3), "geo-lookup": (8, 0, 0.5),
        "email-api": (6, 0.02, 0.02), "shipping-rates": (12, 0, 0), "llm-api": (4, 0.1, 0),
    })  # fmt: skip
    return payments


def an_hour_of_history(rates):
    """Store an hour of 10-second buckets for the "last hour" column (``{circuit: (calls per
    bucket, failure share, failure share in the last 5 minutes)}``) through the backend's own
    store, as the processes' history feeds would have sent them."""
    backend = get_backend()
    now = backend.clock.now_ms() // 10_000 * 10_000
    batches = {}
    for step in range(360):
        start = now - step * 10_000
        batches[start] = {}
        for name, (calls, share, recent) in rates.items():
            vector = [0] * series.SIZE
            vector[series.CALLS] = round(calls * (1.2 + math.sin(step / 40)) / 2) + 1
            vector[series.FAILURES] = round(vector[series.CALLS] * (recent if step < 30 else share))
            batches[start][name] = vector
    assert backend.store_history(batches)
