"""The admin in a real Chromium: edits and resets reach another process through Redis."""

import os
import re
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry

from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.models import BreakerPolicy, CircuitEvent
from tests.browser.scenes import CHANGELIST, a_busy_day, login, trip, user
from tests.factories import BreakerPolicyFactory
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("RESILIENCE_SCREENSHOTS")  # e.g. docs/img to refresh the docs


def badge(page):
    return page.locator("#live-state h2 .rs-badge").inner_text()


def test_threshold_edit_trips_another_process_and_reset_readmits_it(new_page, other_process):
    policy = BreakerPolicyFactory(
        name="demo-upstream", failure_threshold=5, recovery_timeout=600, alert_on_open=False
    )
    admin = user("admin", superuser=True)
    assert other_process.ask("policy")["failure_threshold"] == 5

    page = new_page()
    login(page, "admin")
    page.goto(CHANGELIST)
    page.locator("#result_list").get_by_role("link", name="demo-upstream", exact=True).click()
    page.fill("#id_failure_threshold", "2")
    page.fill("#id_change_reason", "INC-7: trip sooner")
    page.click("input[name=_save]")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()

    # The other process picks the edit up within POLICY_REFRESH_SECONDS and trips at 2, not 5.
    other_process.wait_for("policy", lambda answer: answer["failure_threshold"] == 2)
    answers = [other_process.ask(command) for command in ("fail", "fail", "ok")]
    assert answers == [
        {"result": "failed", "state": "closed"},
        {"result": "failed", "state": "open"},
        {"result": "rejected", "state": "open"},
    ], other_process.stderr()
    assert wait_until(CircuitEvent.objects.filter(kind="opened").exists, 10)  # its writer

    page.goto(f"{CHANGELIST}{policy.pk}/change/")
    assert badge(page) == "open"
    events = page.locator("#live-state table.rs-events").inner_text()
    assert "Opened" in events and "Policy changed" in events
    page.fill("#id_control_reason", "upstream fixed")
    page.get_by_role("button", name="Reset", exact=True).click()
    assert "was reset" in page.locator(".messagelist").inner_text()
    assert badge(page) == "closed"

    other_process.wait_for("ok", lambda answer: answer["result"] == "ok")

    rows = CircuitEvent.objects.filter(circuit="demo-upstream").order_by("created_at", "id")
    assert [(e.kind, e.actor_id) for e in rows] == [
        ("policy_changed", admin.pk),
        ("opened", None),
        ("reset", admin.pk),
    ]
    assert rows[0].reason.endswith("Reason: INC-7: trip sooner")
    assert rows[1].error.endswith("UpstreamDown: 503 from upstream")  # from the other process
    assert rows[2].reason == "upstream fixed"
    assert LogEntry.objects.filter(user=admin, object_id=str(policy.pk)).count() == 2
    assert BreakerPolicy.objects.get(pk=policy.pk).failure_threshold == 2


def test_calls_held_in_another_process_show_against_the_cap(new_page, other_process):
    policy = BreakerPolicyFactory(name="demo-upstream", max_concurrent_calls=2)
    user("admin", superuser=True)
    other_process.wait_for("policy", lambda answer: answer["version"] == policy.version)
    assert [other_process.ask("hold") for _ in range(3)] == [
        {"result": "holding", "in_flight": 1},
        {"result": "holding", "in_flight": 2},
        {"result": "bulkhead_full", "in_flight": 2},  # the cap holds: refused at once
    ], other_process.stderr()

    page = new_page()
    login(page, "admin")
    page.goto(CHANGELIST)
    cell = page.locator("#result_list td.field-calls_in_flight")
    assert cell.inner_text() == "2 / 2"
    assert cell.locator(".rs-in-flight.rs-full").count() == 1
    page.locator("#result_list").get_by_role("link", name="demo-upstream", exact=True).click()
    fact = page.locator("#live-state .rs-facts div", has_text="in flight / cap").locator("dd")
    assert fact.inner_text() == "2 / 2"

    assert other_process.ask("let go") == {"released": 2}
    # The slots go back to Redis without the ended calls waiting (within milliseconds).
    # (Read through the backend: in this thread Playwright's event loop keeps the policy
    # registry off the database.)
    engine_policy = {"demo-upstream": policy_from_values(policy)}
    assert wait_until(
        lambda: get_backend().snapshot_many(engine_policy)["demo-upstream"]["in_flight"] == 0, 10
    )
    page.reload()
    assert fact.inner_text() == "0 / 2"


def test_users_without_permission_see_no_buttons(new_page, shared_settings):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=1)
    trip(policy)
    user("viewer", "view_breakerpolicy")
    user("oncall", "reset_circuit")
    change = f"{CHANGELIST}{policy.pk}/change/"

    page = new_page()
    login(page, "viewer")
    page.goto(change)
    assert badge(page) == "open"
    assert page.locator(".rs-controls").count() == 0
    assert page.locator("button", has_text="Reset").count() == 0
    page.goto(CHANGELIST)
    assert page.locator("select[name=action]").count() == 0
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{change}reset/", form={"reason": "sneaky", "csrfmiddlewaretoken": token}
    )
    assert response.status == 403

    page = new_page()
    login(page, "oncall")
    page.goto(change)
    assert page.locator("button", has_text="Force open").count() == 0
    assert page.locator("input[name=_save]").count() == 0  # may not edit thresholds
    page.get_by_role("button", name="Reset", exact=True).click()
    assert badge(page) == "closed"
    assert CircuitEvent.objects.get(kind="reset").actor.username == "oncall"


def test_screenshots_of_the_changelist_and_change_page(new_page, shared_settings, tmp_path):
    a_busy_day()
    user("admin", superuser=True)
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path

    page = new_page()
    page.set_viewport_size({"width": 1500, "height": 1150})
    login(page, "admin")
    page.goto(CHANGELIST)
    overview = page.locator(".rs-overview").inner_text()
    assert "3 circuits are broken right now" in overview
    assert "Live state:" not in overview  # the shared Redis state, not a degraded fallback
    page.click("#toggle-nav-sidebar")  # more room for the columns in the pictures
    colour = page.locator("#result_list .rs-badge.rs-open").first.evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert colour == "rgb(198, 40, 40)"  # the app's stylesheet is served and applied
    full = page.locator("#result_list .rs-in-flight.rs-full")
    assert full.inner_text() == "4 / 4"
    assert full.evaluate("el => getComputedStyle(el).color") == "rgb(183, 28, 28)"
    page.screenshot(path=target / "admin-changelist.png", full_page=True)

    page.locator("#result_list").get_by_role("link", name="payments-api", exact=True).click()
    assert badge(page) == "open"
    segments = page.locator("svg.rs-timeline rect.rs-seg")
    assert segments.count() == 12  # closed, then one per change
    assert page.locator("svg.rs-timeline rect.rs-forced_open").count() == 1
    page.fill("#id_control_reason", "provider incident INC-7")
    page.screenshot(path=target / "admin-change.png")  # the live panel and the first fields
    for name in ("admin-changelist.png", "admin-change.png"):
        assert (target / name).stat().st_size > 20_000
    assert re.match(r"^\d+ / 5$", page.locator(".rs-facts dd").first.inner_text())
