"""The policy changelist: live columns, the overview, the live-state filter, and their cost."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory, CircuitEventFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resilience/breakerpolicy/"


def row_of(html, name):
    """The changelist row (``<tr>…</tr>``) of policy ``name``."""
    match = re.search(rf"<tr>(?:(?!</tr>).)*>{re.escape(name)}</a></th>.*?</tr>", html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


@pytest.fixture
def circuits(trip, clock):
    """One circuit per display state."""
    BreakerPolicyFactory(name="healthy")
    trip(BreakerPolicyFactory(name="broken", failure_threshold=3, recovery_timeout=90))
    half = BreakerPolicyFactory(name="probing", failure_threshold=1, recovery_timeout=10)
    trip(half)
    BreakerPolicyFactory(name="killed", mode="forced_open")
    BreakerPolicyFactory(name="off", mode="disabled")
    trip(BreakerPolicyFactory(name="watched", mode="monitor", failure_threshold=1))
    clock.advance(10)
    backend = get_backend()
    assert backend.acquire("probing", policy_from_values(half)).permit  # now half-open
    clock.advance(30)  # "broken" has 50 s left


def test_badges_and_live_columns(superuser, client_for, circuits):
    html = client_for(superuser).get(CHANGELIST).content.decode()
    expected = {
        "healthy": "closed",
        "broken": "open",
        "probing": "half_open",
        "killed": "forced_open",
        "off": "disabled",
        "watched": "monitor",
    }
    for name, state in expected.items():
        assert f'class="rs-badge rs-{state}"' in row_of(html, name), name
    broken = row_of(html, "broken")
    assert "3 / 3" in broken  # consecutive failures against the threshold
    assert "100 % of 3" in broken  # failure rate in the window
    assert "in 50\u00a0s" in broken  # time until the trial
    assert "monitor · open" in row_of(html, "watched")  # what enforcing would do
    assert "until released" in row_of(html, "killed")


def test_overview_answers_what_is_broken(superuser, client_for, circuits):
    html = client_for(superuser).get(CHANGELIST).content.decode()
    overview = html[html.index('class="rs-overview"') : html.index('id="changelist"')]
    assert "3 circuits are broken right now" in overview
    for name in ("broken", "probing", "killed"):
        assert f">{name}</a>" in overview
    for name in ("healthy", "off", "watched"):
        assert f">{name}</a>" not in overview
    assert overview.index(">broken</a>") < overview.index(">probing</a>")  # open first


def test_overview_when_all_is_well(superuser, client_for):
    BreakerPolicyFactory(name="healthy")
    html = client_for(superuser).get(CHANGELIST).content.decode()
    assert "Nothing is broken right now" in html


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("broken", {"broken", "probing", "killed"}),
        ("open", {"broken"}),
        ("half_open", {"probing"}),
        ("closed", {"healthy"}),
        ("monitor", {"watched"}),
        ("disabled", {"off"}),
    ],
)
def test_live_state_filter(superuser, client_for, circuits, value, names):
    response = client_for(superuser).get(CHANGELIST, {"live": value})
    listed = {policy.name for policy in response.context["cl"].result_list}
    assert listed == names


def cell(html, name, column):
    """The inner HTML of ``column``'s cell in the row of policy ``name``."""
    match = re.search(rf'<td class="field-{column}">(.*?)</td>', row_of(html, name), re.S)
    assert match, f"no {column} cell for {name}"
    return match.group(1)


def hold(policy, count=1):
    """``count`` calls of ``policy`` admitted and still running (slots taken, never returned)."""
    backend, engine_policy = get_backend(), policy_from_values(policy)
    for _ in range(count):
        assert backend.acquire(policy.name, engine_policy).slot is not None


def test_calls_in_flight_against_the_cap(superuser, client_for):
    hold(BreakerPolicyFactory(name="capped", max_concurrent_calls=3), 2)
    hold(BreakerPolicyFactory(name="full", max_concurrent_calls=1))
    hold(BreakerPolicyFactory(name="timed", call_timeout_ms=2000))  # counted, no cap
    BreakerPolicyFactory(name="plain")
    html = client_for(superuser).get(CHANGELIST).content.decode()
    assert ">In flight / cap</span>" in html
    assert cell(html, "capped", "calls_in_flight") == (
        '<span class="rs-in-flight" title="calls in flight / max concurrent calls">2 / 3</span>'
    )
    assert '<span class="rs-in-flight rs-full"' in cell(html, "full", "calls_in_flight")
    assert ">1 / 1</span>" in cell(html, "full", "calls_in_flight")
    assert cell(html, "timed", "calls_in_flight") == '<span class="rs-in-flight">1</span>'
    assert cell(html, "plain", "calls_in_flight") == (
        '<span title="not counted: no cap, no deadline">-</span>'
    )


def test_last_transition_comes_from_the_events(superuser, client_for):
    policy = BreakerPolicyFactory(name="flappy")
    CircuitEventFactory(policy=policy, kind="opened")
    CircuitEventFactory(policy=policy, kind="closed", from_state="half_open", to_state="closed")
    CircuitEventFactory(policy=policy, kind="policy_changed", from_state="", to_state="")
    html = client_for(superuser).get(CHANGELIST).content.decode()
    assert "Closed, 0" in row_of(html, "flappy")  # policy edits are not transitions


def test_search(superuser, client_for):
    BreakerPolicyFactory(name="payments-api", description="Card provider")
    BreakerPolicyFactory(name="search")
    response = client_for(superuser).get(CHANGELIST, {"q": "card"})
    assert [p.name for p in response.context["cl"].result_list] == ["payments-api"]


def test_backend_failure_still_renders(superuser, client_for, monkeypatch):
    BreakerPolicyFactory(name="payments-api", max_concurrent_calls=2)

    def broken(policies):
        raise ConnectionError("backend unreachable")

    monkeypatch.setattr(get_backend(), "snapshot_many", broken)
    response = client_for(superuser).get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="rs-badge rs-unknown"' in row_of(html, "payments-api")
    assert cell(html, "payments-api", "calls_in_flight") == "-"  # unknown, not "0 / 2"
    assert "could not read the states (ConnectionError)" in html


def make_policies(start, stop, trip):
    for i in range(start, stop):
        policy = BreakerPolicyFactory(name=f"svc-{i:03d}", failure_threshold=1)
        CircuitEventFactory(policy=policy)
        if i % 3 == 0:
            trip(policy)


def changelist_cost(client):
    backend = get_backend()
    calls = []
    original = backend.snapshot_many

    def counting(policies):
        calls.append(len(policies))
        return original(policies)

    backend.snapshot_many = counting
    try:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(CHANGELIST)
    finally:
        del backend.snapshot_many
    assert response.status_code == 200
    assert b"could not read" not in response.content
    return len(queries), calls, response


def test_a_page_of_100_costs_one_backend_call_and_constant_queries(
    superuser, client_for, trip, django_assert_max_num_queries
):
    client = client_for(superuser)
    make_policies(0, 10, trip)
    small_queries, small_calls, _ = changelist_cost(client)
    make_policies(10, 100, trip)
    with django_assert_max_num_queries(8):
        big_queries, big_calls, response = changelist_cost(client)
    rows = response.context["cl"].result_list
    assert len(rows) == 100 and CircuitEvent.objects.count() == 100
    assert sum(row.live.state == "open" for row in rows) == 34
    assert all(row.last_event_kind == "opened" for row in rows)
    assert small_calls == [10] and big_calls == [100]
    assert big_queries == small_queries
