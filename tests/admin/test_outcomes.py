"""The change page's outcome charts: the JSON view they poll, its permission, and the bucket
table that is the whole view without JavaScript (the browser side: tests/browser)."""

import json
import re

import pytest

from resilience import CircuitOpenError, circuit_breaker, events
from resilience.backends import get_backend
from tests.admin.test_permissions import url
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def outcomes_url(policy, range_key=None):
    return url(policy, "outcomes") + (f"?range={range_key}" if range_key else "")


def make_calls(name, clock, *, ok=0, failed=0, takes_ms=20):
    """Protected calls through the decorator, each taking ``takes_ms`` on the manual clock,
    then sent to the history (as the background feed does every few seconds)."""

    @circuit_breaker(name)
    def call(fail):
        clock.advance(takes_ms / 1000)
        if fail:
            raise Boom()

    for fail in [False] * ok + [True] * failed:
        try:
            call(fail)
        except (Boom, CircuitOpenError):
            pass
    get_backend().flush()


@pytest.fixture
def payments():
    # slow_call_ms makes every call timed (percentiles for all of them).
    return BreakerPolicyFactory(
        name="payments-api",
        failure_threshold=3,
        failure_rate_threshold=50,
        slow_call_ms=200,
        recovery_timeout=60,
    )


@pytest.mark.django_db(transaction=True)  # the opening is stored by the events writer thread
def test_the_json_has_the_buckets_percentiles_and_the_opening(
    superuser, client_for, clock, payments
):
    make_calls("payments-api", clock, ok=4, takes_ms=20)
    make_calls("payments-api", clock, failed=3, takes_ms=300)  # the third opens the circuit
    make_calls("payments-api", clock, ok=2)  # rejected: open
    events.flush(timeout=5)
    response = client_for(superuser).get(outcomes_url(payments))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert data["circuit"] == "payments-api" and data["range"] == "hour"
    assert data["seconds"] == 10 and len(data["start"]) == 361  # an hour of 10 s, both ends
    assert data["start"] == sorted(data["start"]) and data["start"][-1] <= clock.now_ms()
    assert data["until"] == data["start"][-1] + 10_000 and data["since"] == data["start"][0]
    columns = ("calls", "failures", "slow", "rejected_open", "rejected_bulkhead", "p50_ms")
    for column in columns:
        assert len(data[column]) == 361
    last = {column: data[column][-1] for column in columns}
    assert last == {
        "calls": 7,
        "failures": 3,
        "slow": 3,
        "rejected_open": 2,
        "rejected_bulkhead": 0,
        "p50_ms": last["p50_ms"],
    }
    assert 15 <= last["p50_ms"] <= 30 and 200 <= data["p99_ms"][-1] <= 300
    assert sum(data["calls"][:-1]) == 0 and data["p50_ms"][0] is None  # empty buckets: zeros
    assert (data["failure_rate_threshold"], data["slow_call_ms"]) == (50, 200)
    assert data["initial"] == "closed"
    assert [(t["kind"], t["to"], t["label"]) for t in data["transitions"]] == [
        ("opened", "open", "Opened")
    ]
    assert data["start"][-1] <= data["transitions"][0]["at"] <= data["until"]
    assert data["warning"] is None


def test_the_day_has_minute_buckets(superuser, client_for, clock, payments):
    make_calls("payments-api", clock, ok=5)
    clock.advance(2 * 3600)
    data = client_for(superuser).get(outcomes_url(payments, "day")).json()
    assert data["range"] == "day" and data["seconds"] == 60
    assert len(data["start"]) == 24 * 60 + 1
    assert sum(data["calls"]) == 5
    assert data["calls"].index(5) == len(data["calls"]) - 1 - 120  # two hours ago


def test_a_bad_range_or_method_is_refused(superuser, client_for, payments):
    client = client_for(superuser)
    response = client.get(outcomes_url(payments, "week"))
    assert response.status_code == 400
    assert response.json() == {"error": "range must be one of: hour, day"}
    response = client.post(outcomes_url(payments))
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("perms", "status"),
    [
        ((), 403),  # staff, but may not see policies
        (("resilience.view_circuitevent",), 403),
        (("resilience.view_breakerpolicy",), 200),
        (("resilience.reset_circuit",), 200),  # on call: sees what they may reset
    ],
)
def test_the_json_needs_view_permission(make_user, client_for, payments, perms, status):
    client = client_for(make_user("someone", *perms))
    assert client.get(outcomes_url(payments)).status_code == status


def test_anonymous_and_unknown(client, superuser, client_for, payments):
    response = client.get(outcomes_url(payments))
    assert response.status_code == 302 and "/login/" in response["Location"]
    response = client_for(superuser).get("/admin/resilience/breakerpolicy/999999/outcomes/")
    assert response.status_code == 404


def test_without_javascript_the_page_has_the_table_of_buckets(
    superuser, client_for, clock, payments
):
    make_calls("payments-api", clock, ok=4)
    clock.advance(30)
    make_calls("payments-api", clock, ok=1, failed=1)
    html = client_for(superuser).get(url(payments)).content.decode()
    section = html[
        html.index('id="outcomes"') : html.index("</section>", html.index('id="outcomes"'))
    ]
    rows = re.findall(
        r"<tr>\s*<td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td><td>([^<]+)</td>", section
    )
    # Newest first, empty buckets left out.
    assert [(calls, failed, rate) for _, calls, failed, rate in rows] == [
        ("2", "1", "50.0 %"),
        ("4", "0", "0.0 %"),
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d0", rows[0][0])
    assert '<details class="rs-buckets" open>' in section  # unfolded unless the script runs
    assert '<div class="rs-charts" hidden>' in section  # the charts need the script
    # The range links work without the script, as plain links.
    assert 'href="?range=day#outcomes"' in section
    data = json.loads(re.search(r'id="rs-outcomes-data" type="application/json">(.*?)</script>',
                                section, re.S).group(1))  # fmt: skip
    assert sum(data["calls"]) == 6


def test_the_page_needs_no_inline_script_or_style(superuser, client_for, clock, payments):
    """What a strict Content-Security-Policy blocks: inline scripts, style attributes/elements
    (the browser test runs the page under such a policy)."""
    make_calls("payments-api", clock, ok=3)
    html = client_for(superuser).get(url(payments) + "?range=day").content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag or 'type="application/json"' in tag for tag in scripts), (
        scripts
    )
    assert "resilience/charts.js" in html and "resilience/charts.css" in html
    assert not re.search(r"\sstyle=", html) and "<style" not in html
    assert re.search(r'class="rs-current" aria-current="true">last day<', html)


def test_a_backend_that_cannot_be_read_leaves_a_warning_not_an_error(
    superuser, client_for, payments, monkeypatch
):
    def broken(*args, **kwargs):
        raise ConnectionError("store down")

    monkeypatch.setattr(get_backend(), "history", broken)
    client = client_for(superuser)
    data = client.get(outcomes_url(payments)).json()
    assert data["start"] == []
    assert "could not read the outcome history (ConnectionError)" in data["warning"]
    html = client.get(url(payments)).content.decode()
    assert "Outcomes:" in html and "No calls and no rejections in this range." in html
