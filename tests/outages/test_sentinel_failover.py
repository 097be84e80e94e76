"""Sentinel failover under load: no READONLY reaches a caller, the new master is used at once.

Master + replica + three sentinels on loopback (tests/support/sentinel.py); 2 processes × 4
threads call ``@circuit_breaker`` through the Sentinel-discovered master while it is failed over
or killed. The guarantees are those of tests/outages/scenario.py, plus: the trip made after the
failover is stored on the new master.
"""

from __future__ import annotations

import pytest
import redis as redis_py

from tests.outages.scenario import assert_survived, run_scenario
from tests.support.redisproc import REDIS_SERVER
from tests.support.sentinel import SentinelDeployment

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_SERVER, reason="redis-server is not installed"),
]
SERVICE = "breakers"


@pytest.fixture
def deployment():
    with SentinelDeployment(service=SERVICE) as sentinel_deployment:
        yield sentinel_deployment


def demote(deployment: SentinelDeployment) -> None:
    """What Sentinel does to a reachable old master, at once: it becomes a READONLY replica."""
    deployment.failover()
    with redis_py.Redis(deployment.master.host, deployment.master.port) as old:
        old.replicaof(deployment.replica.host, deployment.replica.port)


def failover_run(tmp_path, smtp, deployment: SentinelDeployment, inject) -> object:
    old = deployment.master_address()
    assert old == (deployment.master.host, deployment.master.port)
    took: list[float] = []
    run = run_scenario(
        tmp_path,
        smtp,
        "redis://",
        inject,
        lambda: took.append(deployment.wait_for_new_master(old)),
        fault_seconds=0,
        sentinels=deployment.addresses,
        service_name=SERVICE,
    )
    assert took[0] < 10  # the sentinels agreed within seconds
    assert deployment.master_address() == (deployment.replica.host, deployment.replica.port)
    return run


def assert_trip_on_new_master(deployment: SentinelDeployment) -> None:
    with redis_py.Redis(
        deployment.replica.host, deployment.replica.port, decode_responses=True
    ) as new_master:
        [key] = new_master.keys("*{faulty-upstream}:state")
        assert new_master.hget(key, "state") == "open"


@pytest.mark.parametrize("how", ["old-master-demoted", "old-master-killed"])
def test_failover_under_load(tmp_path, smtp, deployment, how):
    inject = (lambda: demote(deployment)) if how == "old-master-demoted" else deployment.master.stop
    run = failover_run(tmp_path, smtp, deployment, inject)
    assert_survived(run, degraded=None)  # READONLY included: nothing reaches a caller
    assert_trip_on_new_master(deployment)


def test_graceful_failover_switches_to_the_new_master_at_once(tmp_path, smtp, deployment):
    run = failover_run(tmp_path, smtp, deployment, deployment.failover)
    assert_survived(run, degraded=None)
    assert_trip_on_new_master(deployment)
