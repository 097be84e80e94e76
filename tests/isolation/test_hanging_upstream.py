"""The scenario of issue 14 for real: gunicorn with 4 sync workers, state in a private Redis,
one view calling an upstream that hangs (``timeout=30``, as a careful user writes it), 20
clients on that view and an unrelated page probed every 0.5 s with a 2 s client timeout."""

from __future__ import annotations

import pytest
from django.db import connection

from resilience.models import BreakerPolicy, CircuitEvent
from tests.support.hangscenario import CIRCUIT, RECOMMENDED, Gunicorn, run, site_env
from tests.support.upstream import HangingUpstream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# docs/hangs.md's recommended policy; a short recovery so a half-open trial (which hangs too)
# happens inside the window.
POLICY = {**RECOMMENDED, "recovery_timeout": 4}


def _site(tmp_path, redis_proc, upstream, policy=None):
    db_name = str(connection.settings_dict["NAME"])
    env = site_env(db_name, redis_proc.url, upstream, policy=policy)
    return Gunicorn(env, tmp_path / "gunicorn.log", workers=4)


def _opened_event(timeout: float = 10.0) -> CircuitEvent | None:
    """The circuit's first ``opened`` event, waited for (workers write it in the background)."""
    opened = CircuitEvent.objects.filter(circuit=CIRCUIT, kind="opened").order_by("created_at")
    return wait_for(opened.first, timeout, 0.1)


def test_recommended_policy_keeps_the_site_up(tmp_path, redis_proc):
    BreakerPolicy.objects.create(name=CIRCUIT, alert_on_open=False, **POLICY)
    with HangingUpstream(60) as upstream, _site(tmp_path, redis_proc, upstream, POLICY) as site:
        site.warm("/quote/")
        outcome = run(site, upstream, seconds=8)
        opened = _opened_event()
        log = site.log()
    summary = outcome.summary()
    assert outcome.availability >= 0.99, (summary, log)
    assert 1 <= outcome.upstream_max_in_flight <= POLICY["max_concurrent_calls"], summary
    assert summary["client_outcomes"].get("refused", 0) > 0, summary  # the cap really refused
    assert opened is not None, (summary, log)
    to_open = opened.created_at.timestamp() - outcome.hang_started
    assert 0 <= to_open <= POLICY["slow_call_ms"] / 1000 + 1.0, (to_open, summary)
    # Judged while running: open before any hung call returned (their 2 s timeout).
    assert outcome.first_abandoned is not None, summary
    assert opened.created_at.timestamp() < outcome.first_abandoned, (to_open, summary)


def test_default_policy_loses_the_site(tmp_path, redis_proc):
    """The problem itself, so that the scenario above is known to bite: with the default policy
    every worker ends up waiting on the upstream and the unrelated page stops answering."""
    with HangingUpstream(60) as upstream, _site(tmp_path, redis_proc, upstream) as site:
        site.warm("/quote/")
        outcome = run(site, upstream, seconds=4)
    summary = outcome.summary()
    assert outcome.availability <= 0.25, summary
    assert outcome.upstream_max_in_flight == 4, summary  # every worker stuck in the upstream
