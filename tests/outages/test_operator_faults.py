"""Operators during a Redis outage: every page, button, endpoint and command still answers.

The admin changelist and change page, a reset button, the health and metrics endpoints and
``manage.py resilience status`` (which then exits 1) each add at most one ``socket_timeout`` per
backend operation to their usual time (a reset is two: the reset and the state shown after it),
never a 500 or a traceback.
"""

from __future__ import annotations

import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from resilience import circuit_breaker
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.outages.scenario import settings_for

# A longer timeout than the other fault tests: the bounds must tell "one timeout" from "two"
# apart even when a loaded 2-core machine adds a few hundred milliseconds to a page.
SOCKET_TIMEOUT = 1.0
SLACK = 0.5

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.outages.urls")]

ADMIN = "/admin/resilience/breakerpolicy/"


def timed(action):
    start = time.monotonic()
    result = action()
    return result, time.monotonic() - start


@pytest.mark.parametrize("fault", ["blackhole", "refuse", "sigstop"])
def test_operator_surfaces_answer_during_an_outage(settings, proxy, redis_proc, fault, capsys):
    settings.RESILIENCE = settings_for(proxy.url(), socket_timeout=SOCKET_TIMEOUT)
    policies = [BreakerPolicyFactory(name=f"op-{i}", critical=i == 0) for i in range(30)]
    assert circuit_breaker("op-0")(lambda: "ok")() == "ok"
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))
    pages = {
        ADMIN: 200,
        f"{ADMIN}?live=broken": 200,
        f"{ADMIN}{policies[0].pk}/change/": 200,
        "/resilience/health/": 503,
        "/resilience/metrics/": 200,
    }
    healthy = {url: timed(lambda url=url: client.get(url))[1] for url in pages}  # also warms up
    {"blackhole": proxy.blackhole, "refuse": proxy.refuse, "sigstop": redis_proc.pause}[fault]()
    one, two = SOCKET_TIMEOUT + SLACK, 2 * SOCKET_TIMEOUT + SLACK
    try:
        for url, status in pages.items():
            response, took = timed(lambda url=url: client.get(url))
            assert response.status_code == status, url
            assert took - healthy[url] <= one, f"{url}: {took:.3f}s, {healthy[url]:.3f}s healthy"
        response, took = timed(
            lambda: client.post(f"{ADMIN}{policies[1].pk}/reset/", {"reason": "outage"})
        )
        assert response.status_code == 302 and took <= two, took
        assert CircuitEvent.objects.filter(circuit="op-1", kind="reset").count() == 1
        # It prints what it has, then fails (exit status 1): the states are not the shared ones.
        start = time.monotonic()
        with pytest.raises(CommandError, match="backend could not be read"):
            call_command("resilience", "status", "--json")
        took = time.monotonic() - start
        assert '"status": "degraded"' in capsys.readouterr().out and took <= one
    finally:
        redis_proc.resume()
