"""Scenario machinery shared by the fault tests: settings, phases, and what must hold."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tests.factories import BreakerPolicyFactory
from tests.outages.load import Load, Result
from tests.outages.loadworker import FAILED
from tests.outages.reconcile import alert_problems, alerts_settings, smtp_env, transition_problems
from tests.support.smtp import SMTPServer

SOCKET_TIMEOUT = 0.25
REPROBE = 0.25
# Two shared CPU cores run the workers, redis-server, the proxy and pytest: scheduling noise.
MARGIN = 0.15
RECOVERY = REPROBE + SOCKET_TIMEOUT + 0.6
THRESHOLD = 3


@dataclass
class Run:
    result: Result
    smtp: SMTPServer
    fault: float
    heal: float
    trip: float


def settings_for(url: str, **options: object) -> dict:
    """``RESILIENCE`` for the Redis backend at ``url``: short timeouts, fast re-probes."""
    return {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {
            "url": url,
            "prefix": f"f{uuid.uuid4().hex[:8]}",
            "socket_timeout": SOCKET_TIMEOUT,
            "reprobe_interval": REPROBE,
            "log_interval": 0.5,
            **options,
        },
        "ON_BACKEND_ERROR": "local",
        "POLICY_REFRESH_SECONDS": 0.5,
    }


def run_scenario(
    tmp_path,
    smtp: SMTPServer,
    url: str,
    inject: Callable[[], None],
    heal: Callable[[], None],
    fault_seconds: float = 1.2,
    fail_during: bool = False,
    stall: float = SOCKET_TIMEOUT + MARGIN,
    **options: object,
) -> Run:
    """Warm up, ``inject()``, wait, ``heal()`` (the fault is over when it returns), trip.

    Alerts are on (sync, no cooldown) and mailed to ``smtp``. ``fail_during``: the upstream
    fails for the duration of the fault too. Calls slower than ``stall`` have their stack taken.
    """
    circuit = "faulty-upstream"
    BreakerPolicyFactory(name=circuit, failure_threshold=THRESHOLD, recovery_timeout=60)
    resilience = {**settings_for(url, **options), "ALERTS": alerts_settings()}
    with Load(tmp_path, resilience, circuit, env=smtp_env(smtp), stall=stall) as load:
        time.sleep(0.4)
        fault = time.time()
        inject()
        load.fail(fail_during)
        time.sleep(fault_seconds)
        load.fail(False)
        heal()
        healed = time.time()
        time.sleep(RECOVERY + 0.3)
        trip = time.time()
        load.fail(True)
        time.sleep(0.8)
        result = load.stop()
    return Run(result, smtp, fault, healed, trip)


def assert_survived(
    run: Run, *, degraded: bool | None, bound: float = SOCKET_TIMEOUT + MARGIN
) -> None:
    """The guarantees of docs/reliability.md; ``degraded=None``: either is fine in the fault."""
    result = run.result
    assert result.unflushed == 0, "a worker could not store its events"
    assert result.leaks == [], f"{len(result.leaks)} errors reached callers: {result.leaks[0]}"
    assert len(result.between(run.fault, run.heal)) > 50  # callers kept going
    slowest = result.slowest()
    assert slowest <= bound, (
        f"a protected call took {slowest:.3f}s (bound {bound:.3f}s); stalled in: {result.stalls}"
    )

    during = result.degraded_during(run.fault, run.heal + 0.05)
    if degraded is not None:
        assert during == [degraded] * len(during), during
    assert result.degraded_during(0, run.fault) == [False] * len(during), result.reasons
    for recovered in result.recovered_at(run.heal):
        assert recovered is not None and recovered <= run.heal + RECOVERY, (
            recovered and recovered - run.heal
        )

    # Shared state again: the processes failing together make exactly one "opened".
    after = result.transitions(since=run.trip)
    assert [t[1] for t in after] == ["opened"], after
    opened_ms = after[0][2]
    late = result.between(opened_ms / 1000 + 0.003, 1e12)
    admitted_late = [c for c in late if c[2] == FAILED]
    assert admitted_late == [], f"{len(admitted_late)} calls admitted after the circuit opened"
    assert result.outcomes(run.trip).get("rejected", 0) > 0

    # Every transition handed over by any process is stored exactly once, and mailed once.
    assert transition_problems(result) == []
    assert alert_problems(run.smtp) == []
    assert len(run.smtp.messages) >= 1
