"""Regression tests from the r1 review of the isolation core (slots, watchdog, fork)."""

import pytest

from resilience import breaker, circuit_breaker
from resilience.watchdog import watchdog
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("memory_backend")
def test_an_is_failure_raising_a_base_exception_still_ends_the_call():
    """r1 review: is_failure ran before the call's books were closed, so a predicate raising
    SystemExit/KeyboardInterrupt left its slot taken and its watch alive, and the watchdog
    then renewed that slot's lease for as long as the process lived."""
    BreakerPolicyFactory(name="pred-exit", max_concurrent_calls=1, slow_call_ms=1000)

    def interrupted(result):
        raise KeyboardInterrupt

    @circuit_breaker("pred-exit", is_failure=interrupted)
    def call():
        return "ok"

    watched = len(watchdog)
    with pytest.raises(KeyboardInterrupt):
        call()
    assert breaker("pred-exit").snapshot()["in_flight"] == 0
    assert len(watchdog) == watched  # nothing left for the watchdog to renew or judge
