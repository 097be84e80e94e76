"""The changelist's "last hour" column: a sparkline per row from ONE history read for the page
(``Backend.read_history``, 1-minute buckets), and no SQL of its own (Redis' side:
test_redis_cost.py)."""

import re
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from resilience.admin import trends
from resilience.backends import get_backend
from tests.admin.test_outcomes import make_calls
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/resilience/breakerpolicy/"
SVG = "{http://www.w3.org/2000/svg}"


def cell(html, name):
    """The "last hour" cell of the row of circuit ``name``."""
    row = re.search(rf">{re.escape(name)}</a></th>(.*?)</tr>", html, re.S).group(1)
    return re.search(r'<td class="field-last_hour">(.*?)</td>', row, re.S).group(1)


def test_each_row_shows_its_last_hour(superuser, client_for, clock):
    BreakerPolicyFactory(name="busy", failure_threshold=0)
    BreakerPolicyFactory(name="idle")
    make_calls("busy", clock, ok=3, failed=1)
    clock.advance(20 * 60)
    make_calls("busy", clock, ok=1000)
    html = client_for(superuser).get(CHANGELIST).content.decode()
    busy = cell(html, "busy")
    assert "Last hour: 1,004 calls, 0.1 % failed" in busy  # the tooltip and aria-label
    assert re.search(r">1,004 calls</span>, <span[^>]*>0.1 % failed<", busy)
    svg = ElementTree.fromstring(busy[: busy.index("</svg>") + 6])
    paths = {p.get("class"): p.get("d") for p in svg.iter(f"{SVG}path")}
    assert set(paths) == {"rs-spark-ok", "rs-spark-fail"}
    assert paths["rs-spark-fail"].count("M") == 1  # one bar with a failure in it...
    assert paths["rs-spark-ok"].count("M") == 2  # ...and two with successes
    # The newest bar is the full height: it holds the most calls.
    assert paths["rs-spark-ok"].endswith(f"V0.0h{trends.WIDTH / trends.BINS - 1:.1f}V22.0Z")
    assert cell(html, "idle") == '<span class="rs-spark-words">no calls</span>'


@pytest.mark.django_db(transaction=True)  # the opening is stored by the events writer thread
def test_rejections_are_their_own_layer(superuser, client_for, clock):
    BreakerPolicyFactory(name="down", failure_threshold=2, recovery_timeout=600)
    make_calls("down", clock, failed=2)
    make_calls("down", clock, ok=5)  # rejected: open
    html = client_for(superuser).get(CHANGELIST).content.decode()
    down = cell(html, "down")
    assert 'aria-label="Last hour: 2 calls, 100 % failed, 5 rejected"' in down
    assert 'class="rs-spark-rejected"' in down


def test_a_page_costs_one_history_read_and_no_query_whatever_its_size(
    superuser, client_for, clock, monkeypatch, django_assert_max_num_queries
):
    backend = get_backend()
    reads = []
    original = backend.read_history

    def counting(names, starts, size_ms):
        reads.append((list(names), len(starts), size_ms))
        return original(names, starts, size_ms)

    monkeypatch.setattr(backend, "read_history", counting)
    client = client_for(superuser)
    for i in range(3):
        BreakerPolicyFactory(name=f"svc-{i:03d}")
    client.get(CHANGELIST)
    with CaptureQueriesContext(connection) as small:
        client.get(CHANGELIST)
    for i in range(3, 150):
        BreakerPolicyFactory(name=f"svc-{i:03d}")
    make_calls("svc-042", clock, ok=5)
    reads.clear()
    with django_assert_max_num_queries(len(small)):
        html = client.get(CHANGELIST).content.decode()
    # The page's rows, in one call: the minutes of the hour (both ends included).
    assert reads == [([f"svc-{i:03d}" for i in range(100)], 61, 60_000)]
    assert html.count('<td class="field-last_hour">') == 100
    assert html.count('class="rs-spark"') == 1 and "5 calls" in cell(html, "svc-042")


def test_a_backend_that_cannot_be_read_shows_a_dash(superuser, client_for, monkeypatch):
    BreakerPolicyFactory(name="svc")

    def broken(*args, **kwargs):
        raise ConnectionError("store down")

    monkeypatch.setattr(get_backend(), "read_history", broken)
    response = client_for(superuser).get(CHANGELIST)
    assert response.status_code == 200
    assert cell(response.content.decode(), "svc") == "-"  # the admin's empty value
