"""The admin at 1366, 1440 and 1920 px and in dark mode: every column in view, nothing sticking
out of its box, the new markers readable (WCAG contrast). Screenshots go to
``RESILIENCE_SCREENSHOTS`` when set (look at them), else to a temporary directory."""

import os
from pathlib import Path

import pytest

from resilience.models import CircuitEvent
from tests.browser.layout import (
    PLACEHOLDER_FITS_JS,
    cells_overflowing,
    contrast_of,
    overflow,
    right_edge,
)
from tests.browser.scenes import CHANGELIST, a_busy_day, demo_history, login, user
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1366, 1440, 1920)
SCREENSHOTS = os.environ.get("RESILIENCE_SCREENSHOTS")
LONG = "upstream said: " + "connection reset by peer while reading the response body " * 6


@pytest.fixture
def scene(shared_settings):
    """The screenshots' day, plus what makes columns wide: a per-host circuit name, a long
    user name, long errors and reasons, and a one-minute outage on the timeline."""
    payments = a_busy_day()
    BreakerPolicyFactory(name="http:api.payments.example.com", critical=True)
    night_owl = user("night-owl-on-call-operator", superuser=True)
    CircuitEvent.objects.filter(circuit="payments-api", kind="opened").update(error=LONG)
    CircuitEvent.objects.create(
        circuit="payments-api", policy=payments, kind="reset", from_state="open",
        to_state="closed", actor=night_owl, reason="INC-7: " + LONG,
    )  # fmt: skip
    minute = BreakerPolicyFactory(name="blip-api")
    demo_history(minute, minute_outage=True)
    user("admin", superuser=True)
    return payments


@pytest.fixture
def shots(tmp_path):
    return Path(SCREENSHOTS) if SCREENSHOTS else tmp_path


def open_page(new_page, width, scheme="light"):
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    login(page, "admin")
    return page


def open_policy(page, name):
    page.goto(CHANGELIST)
    page.locator("#result_list").get_by_role("link", name=name, exact=True).click()
    page.wait_for_url("**/change/")


def assert_in_view(page, selector, width):
    cells = page.locator(selector)
    assert cells.count() > 0, selector
    for i in range(cells.count()):
        cell = cells.nth(i)
        assert right_edge(cell) <= width, f"{cell.inner_text()!r} ends past {width} px"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_changelist_shows_every_column(new_page, scene, shots, width):
    page = open_page(new_page, width)
    page.goto(CHANGELIST)
    page.screenshot(path=shots / f"layout-changelist-{width}.png", full_page=True)
    headers = [h.strip().lower() for h in page.locator("#result_list thead th").all_inner_texts()]
    assert headers[-2:] == ["mode", "critical"]
    # Every shown header in view; up to 1500 px the "last hour" sparklines give way.
    assert_in_view(page, "#result_list thead th:visible", width)
    assert_in_view(page, "#result_list td.field-critical_flag", width)
    assert page.locator("#result_list th.column-last_hour").is_visible() == (width > 1500)
    assert overflow(page.locator("#changelist-form .results")) == 0  # no sideways scrolling
    assert cells_overflowing(page, "#result_list td, #result_list tbody th") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    reason = page.locator("#changelist .actions input[name=reason]")
    assert reason.evaluate(PLACEHOLDER_FITS_JS), "the reason placeholder is cut"
    assert right_edge(reason) <= width
    # Critical: a worded marker, never the green tick of a boolean column.
    row = page.locator("#result_list tr", has_text="payments-api")
    assert row.locator(".rs-critical").inner_text().lower() == "critical"
    assert page.locator("#result_list img[alt=True], #result_list img[alt=False]").count() == 0
    assert row.locator("td.field-state_badge .rs-trial").inner_text().startswith("next trial in")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_policy_page_keeps_its_tables_in_their_box(new_page, scene, shots, width):
    page = open_page(new_page, width)
    page.goto(f"{CHANGELIST}{scene.pk}/change/")
    panel = page.locator("#live-state")
    page.screenshot(path=shots / f"layout-change-{width}.png")
    assert right_edge(panel) <= width
    table = panel.locator("table.rs-events")
    assert right_edge(table) <= right_edge(panel)
    assert overflow(panel.locator(".rs-events-box")) == 0
    assert cells_overflowing(page, "#live-state .rs-events td:not(.rs-clip)") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # The long reason is cut to one line inside its cell; hovering shows more.
    reason = table.locator("tbody tr", has_text="night-owl").locator("td").last
    assert reason.evaluate("el => el.scrollHeight <= el.clientHeight + 1")
    assert reason.get_attribute("title").startswith("INC-7: upstream said:")
    assert_in_view(page, "#live-state .rs-controls > :not([type=hidden])", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_event_log_fits_beside_its_filters(new_page, scene, shots, width):
    page = open_page(new_page, width)
    page.goto("/admin/resilience/circuitevent/")
    page.screenshot(path=shots / f"layout-events-{width}.png", full_page=True)
    assert_in_view(page, "#result_list thead th", width)
    assert overflow(page.locator("#changelist-form .results")) == 0
    assert cells_overflowing(page, "#result_list td, #result_list tbody th") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    error = page.locator("#result_list td.field-short_error .rs-clip").first
    assert error.evaluate("el => el.scrollHeight <= el.clientHeight + 1")  # one line


@pytest.mark.parametrize("width", (1366, 1920))
def test_a_one_minute_outage_shows_on_the_timeline(new_page, scene, shots, width):
    page = open_page(new_page, width)
    open_policy(page, "blip-api")
    outages = page.locator("svg.rs-timeline rect.rs-seg.rs-open")
    widths = sorted(outages.nth(i).bounding_box()["width"] for i in range(outages.count()))
    assert widths[0] >= 2.5  # 0.67 px if drawn to scale
    blip = page.locator("svg.rs-timeline polygon.rs-blip.rs-open", has_text="(1\u00a0min 0\u00a0s)")
    assert blip.count() == 1
    box = blip.bounding_box()
    assert box["width"] >= 8 and box["height"] >= 6
    assert blip.locator("title").text_content().startswith("open from ")
    page.locator("figure.rs-timeline-box").screenshot(path=shots / f"layout-timeline-{width}.png")


def dark_by_toggle(page):
    """Django's theme toggle, from "auto" on a light system: the first press picks dark."""
    page.locator("button.theme-toggle").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"


@pytest.mark.parametrize("how", ["system", "toggle"])
def test_dark_mode_keeps_the_new_markers_readable(new_page, scene, shots, how):
    page = open_page(new_page, 1440, "dark" if how == "system" else "light")
    page.goto(CHANGELIST)
    if how == "toggle":
        dark_by_toggle(page)
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert body == "rgb(18, 18, 18)", "the admin is not dark"
    results = page.locator("#result_list")
    for selector in (".rs-critical", ".rs-in-flight.rs-full", ".rs-trial", "td.field-mode_name"):
        assert contrast_of(results.locator(selector)) >= 4.5, selector
    for state in ("open", "closed", "monitor", "forced_open", "disabled", "half_open"):
        badge = page.locator(f".rs-badge.rs-{state}")
        assert contrast_of(badge) >= 4.5, state
    page.screenshot(path=shots / f"dark-{how}-changelist.png", full_page=True)

    open_policy(page, "blip-api")
    assert contrast_of(page.locator("svg.rs-timeline polygon.rs-blip")) >= 3  # a graphic: 3:1
    assert contrast_of(page.locator("svg.rs-timeline .rs-tick")) >= 4.5
    assert contrast_of(page.locator("#live-state .rs-events td")) >= 4.5
    page.screenshot(path=shots / f"dark-{how}-change.png")
