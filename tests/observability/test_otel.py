"""The otel extra: protected calls and transitions as events on the current span, checked with
the OpenTelemetry SDK's in-memory exporter; without the extra, nothing imported and no cost."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from resilience import BulkheadFullError, CircuitOpenError, breaker, circuit_breaker, tracing
from resilience.backends import get_backend
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.usefixtures("breaker_db")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter(settings, breaker_db):
    settings.RESILIENCE = {**settings.RESILIENCE, "TRACING": True}
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter):
    provider = TracerProvider()  # not the global one: get_current_span() reads the context
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("tests")


def events(exporter, name="request"):
    """``(event name, attributes)`` of the finished span ``name``, in order."""
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return [(e.name, dict(e.attributes)) for e in span.events]


def call(circuit, outcome, state):
    return (
        "resilience.call",
        {"resilience.circuit": circuit, "resilience.outcome": outcome, "resilience.state": state},
    )


def transition(circuit, kind, from_state, to_state, failures):
    return (
        "resilience.transition",
        {
            "resilience.circuit": circuit,
            "resilience.transition": kind,
            "resilience.from_state": from_state,
            "resilience.to_state": to_state,
            "resilience.failure_count": failures,
        },
    )


@circuit_breaker("payments-api")
def charge(fail=False):
    if fail:
        raise ConnectionError("down")
    return "ok"


def test_calls_and_the_opening_are_events_of_the_current_span(tracer, exporter):
    BreakerPolicyFactory(name="payments-api", failure_threshold=2)
    with tracer.start_as_current_span("request"):
        assert charge() == "ok"
        for _ in range(2):
            with pytest.raises(ConnectionError):
                charge(fail=True)
        with pytest.raises(CircuitOpenError):
            charge()
    assert events(exporter) == [
        call("payments-api", "success", "closed"),
        call("payments-api", "failure", "closed"),
        call("payments-api", "failure", "open"),
        transition("payments-api", "opened", "closed", "open", 2),
        call("payments-api", "rejected", "open"),
    ]


def test_a_trial_call_half_opens_then_closes(tracer, exporter, clock):
    BreakerPolicyFactory(name="payments-api", failure_threshold=1, recovery_timeout=30)
    with pytest.raises(ConnectionError):
        charge(fail=True)  # outside any span: no event anywhere
    clock.advance(31)
    with tracer.start_as_current_span("request"):
        assert charge() == "ok"
    assert events(exporter) == [
        transition("payments-api", "half_opened", "open", "half_open", 1),
        call("payments-api", "success", "closed"),
        transition("payments-api", "closed", "half_open", "closed", 0),
    ]


def test_coroutines_context_managers_and_generators_too(tracer, exporter):
    BreakerPolicyFactory(name="search")

    @circuit_breaker("search")
    async def search():
        return []

    @circuit_breaker("search")
    def stream():
        yield 1

    async def view():  # the task runs in a copy of the context: the span is current there
        assert await search() == []
        async with breaker("search"):
            pass

    with tracer.start_as_current_span("request"):
        asyncio.run(view())
        with breaker("search"):
            pass
        assert list(stream()) == [1]
    assert events(exporter) == [call("search", "success", "closed")] * 4


def test_a_kill_switch_and_a_full_bulkhead_are_rejections(tracer, exporter):
    BreakerPolicyFactory(name="payments-api", recovery_timeout=45)
    BreakerPolicyFactory(name="search", max_concurrent_calls=1)
    breaker("payments-api").force_open(reason="incident")
    with tracer.start_as_current_span("request"):
        with pytest.raises(CircuitOpenError) as refused:
            charge()
        with breaker("search"), pytest.raises(BulkheadFullError), breaker("search"):
            pass
    # The same error as without tracing (a forced-open route refuses through acquire then).
    assert (refused.value.state, refused.value.retry_after) == ("forced_open", 45.0)
    assert events(exporter) == [
        call("payments-api", "rejected", "forced_open"),
        call("search", "rejected", "bulkhead_full"),
        call("search", "success", "closed"),
    ]


def test_nothing_without_a_recording_span(tracer, exporter):
    BreakerPolicyFactory(name="payments-api")
    assert charge() == "ok"  # no current span at all
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    unsampled.add_span_processor(SimpleSpanProcessor(exporter))
    with unsampled.get_tracer("tests").start_as_current_span("sampled-out") as span:
        assert not span.is_recording()
        assert charge() == "ok"
    assert exporter.get_finished_spans() == ()


def test_redis_backend_calls_are_traced_too(tracer, exporter, settings, redis_url):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": redis_url},
        "TRACING": True,
    }
    BreakerPolicyFactory(name="payments-api", failure_threshold=1)
    with tracer.start_as_current_span("request"):
        charge()
        with pytest.raises(ConnectionError):
            charge(fail=True)
    assert events(exporter) == [
        call("payments-api", "success", "closed"),
        call("payments-api", "failure", "open"),
        transition("payments-api", "opened", "closed", "open", 1),
    ]


def test_tracing_off_keeps_the_untraced_route(settings, tracer, exporter):
    settings.RESILIENCE = {**settings.RESILIENCE, "TRACING": False}
    BreakerPolicyFactory(name="payments-api")
    with tracer.start_as_current_span("request"):
        charge()
    route = charge.breaker._route
    assert route.lane is not None and route.record == get_backend().record
    assert events(exporter) == []


def test_with_tracing_the_route_is_wrapped(tracer):
    BreakerPolicyFactory(name="payments-api")
    charge()
    route = charge.breaker._route
    assert tracing.enabled()
    assert route.lane is None and route.record.__name__ == "record_traced"


# Without the extra: opentelemetry cannot be imported (as if not installed), the default
# settings (TRACING on) build the same routes as TRACING off, and no call path touches tracing.
WITHOUT_OTEL = """
import json, sys
sys.modules["opentelemetry"] = None  # importing it now raises ImportError, as if not installed
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "resilience"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    RESILIENCE={"CREATE_MISSING_POLICIES": False},
    USE_TZ=True,
)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from resilience import breaker, circuit_breaker, tracing
from resilience.backends import get_backend
from resilience.policies import registry
registry.background = False

@circuit_breaker("payments-api")
def charge():
    return "ok"

charge()
with breaker("search"):
    pass
route = charge.breaker._route
lane = get_backend().lane("payments-api")
print(json.dumps({
    "tracing": tracing.enabled(),
    "lane": route.lane is lane,
    "acquire": route.acquire == lane.acquire,
    "record": route.record == get_backend().record,
    "imported": sorted(m for m in sys.modules if m.startswith("opentelemetry.")),
}))
"""


def test_without_the_extra_nothing_is_imported_and_routes_are_untraced():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {
        "tracing": False,
        "lane": True,
        "acquire": True,
        "record": True,
        "imported": [],
    }
