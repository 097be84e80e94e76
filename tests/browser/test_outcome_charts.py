"""The change page's outcome charts in a real Chromium: live updates without a reload, polling
that stops while the tab is hidden, a strict Content-Security-Policy, the page without
JavaScript, and how the charts look (1366 and 1920 px, light and dark)."""

import math
import os
import random
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from resilience import BulkheadFullError, CircuitOpenError, circuit_breaker, events
from resilience.admin import outcomes
from resilience.admin.live import policy_from_values
from resilience.backends import get_backend
from resilience.clock import ManualClock
from tests.browser.scenes import login
from tests.browser.test_admin_browser import CHANGELIST, user
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("RESILIENCE_SCREENSHOTS")  # e.g. docs/img to refresh the docs
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
READOUT = "#outcomes .rs-readout"
# Collects what the browser reports, before any script of the page runs.
WATCH_CSP = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
    `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


class Boom(Exception):
    pass


def calls(name, *, ok=0, failed=0, rejected_ok=0):
    """Protected calls made in this (the test's) process, against the live server's backend."""

    @circuit_breaker(name)
    def call(fail):
        if fail:
            raise Boom()

    for fail in [False] * ok + [True] * failed + [False] * rejected_ok:
        try:
            call(fail)
        except (Boom, CircuitOpenError):
            pass


@pytest.fixture
def memory(settings, monkeypatch):
    """The memory backend on the system clock, shared by the live server's threads and this
    one; the page polls every second."""
    settings.RESILIENCE = {"BACKEND": "resilience.backends.memory.MemoryBackend"}
    monkeypatch.setattr(outcomes, "POLL_SECONDS", 1)


@pytest.fixture(params=["memory", "redis"])
def either_backend(request, monkeypatch):
    """The memory backend, or a private Redis (``shared_settings``); polling every second."""
    if request.param == "redis":
        request.getfixturevalue("shared_settings")
        monkeypatch.setattr(outcomes, "POLL_SECONDS", 1)
    else:
        request.getfixturevalue("memory")
    return request.param


def open_change_page(page, policy):
    login(page, "admin")
    page.goto(f"{CHANGELIST}{policy.pk}/change/")
    page.wait_for_selector("#outcomes svg.rs-svg")


def text_of(page, selector):
    return page.locator(selector).inner_text()


def test_the_charts_follow_calls_made_while_the_page_is_open(new_page, either_backend):
    policy = BreakerPolicyFactory(
        name="payments-api", failure_threshold=5, recovery_timeout=600, alert_on_open=False
    )
    user("admin", superuser=True)
    page = new_page()
    open_change_page(page, policy)
    assert "no calls" in text_of(page, READOUT)
    assert page.locator("#outcomes [data-chart=calls] path.rs-bar").count() == 0
    # The table is folded away under the charts (text_content: what is there, shown or not).
    assert page.locator("#outcomes .rs-bucket-table tbody").text_content().strip() == (
        "No calls and no rejections in this range."
    )
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    calls("payments-api", ok=12, failed=5, rejected_ok=3)  # the fifth failure opens it
    page.wait_for_function(
        f"document.querySelector('{READOUT}').textContent.includes('17 calls')", timeout=10_000
    )
    readout = text_of(page, READOUT)
    assert "5 failed (29.4 %)" in readout and "3 rejected (open)" in readout
    calls_chart = page.locator("#outcomes [data-chart=calls]")
    assert calls_chart.locator("path.rs-s-ok").count() == 1
    assert calls_chart.locator("path.rs-s-fail").count() == 1
    assert page.locator("#outcomes [data-chart=rejected] path.rs-s-open").count() == 1
    assert page.locator("#outcomes [data-chart=rate] path.rs-line").count() == 1
    cells = page.locator("#outcomes .rs-bucket-table tbody tr").first.locator("td")
    assert cells.all_text_contents()[1:4] == ["17", "5", "29.4 %"]
    assert cells.all_text_contents()[9:] == ["3", "0"]
    # The opening, stored by the events writer, is marked at the next poll.
    page.wait_for_selector(
        "#outcomes [data-chart=calls] line.rs-transition.rs-t-open", state="attached"
    )
    assert page.locator("#outcomes [data-chart=calls] rect.rs-band.rs-t-open").count() == 1
    assert page.evaluate("window.__sameDocument") is True

    # Hovering a chart reads that bucket out: the calls' bucket, and the opening's (the same
    # one, unless the calls ended just before a 10-second boundary and the opening was stored
    # just after it).
    for mark, expected in (("path.rs-s-fail", "17 calls"), ("line.rs-t-open", "Opened → open")):
        box = calls_chart.locator(mark).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        readout = text_of(page, READOUT)
        assert expected in readout, readout
    assert page.evaluate("window.__sameDocument") is True


def test_polling_stops_while_the_tab_is_hidden(new_page, memory):
    policy = BreakerPolicyFactory(name="payments-api")
    user("admin", superuser=True)
    page = new_page()
    asked = []
    page.on("request", lambda request: "/outcomes/" in request.url and asked.append(time.time()))
    open_change_page(page, policy)
    page.wait_for_function("document.querySelector('#outcomes .rs-status').textContent !== ''")
    assert text_of(page, "#outcomes .rs-status") == "Live: refreshed every 1 s."
    page.wait_for_timeout(2500)  # (Playwright delivers its events while it waits)
    assert len(asked) >= 1  # polling while visible

    visibility = """(state) => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""
    page.evaluate(visibility, "hidden")
    hidden_at = len(asked)
    assert text_of(page, "#outcomes .rs-status") == "Paused while this tab is hidden."
    page.wait_for_timeout(3000)  # three polls' worth of time: none may happen
    assert len(asked) == hidden_at

    page.evaluate(visibility, "visible")
    page.wait_for_function(
        "document.querySelector('#outcomes .rs-status').textContent.includes('Live')"
    )
    deadline = time.monotonic() + 5
    while len(asked) == hidden_at and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(asked) > hidden_at  # asked again at once on coming back

    page.context.clear_cookies()  # signed out meanwhile: the admin answers with its login page
    page.wait_for_function(
        "document.querySelector('#outcomes .rs-status').textContent.includes('signed out')"
    )
    assert text_of(page, "#outcomes .rs-status") == (
        "Could not refresh (signed out? Reload the page); showing the last data."
    )
    assert page.locator("#outcomes svg.rs-svg").count() == 4  # the charts stay


def test_the_admin_pages_run_under_a_strict_content_security_policy(new_page, memory, settings):
    settings.TEST_CONTENT_SECURITY_POLICY = CSP
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=3, slow_call_ms=500)
    calls("payments-api", ok=10, failed=3, rejected_ok=2)
    get_backend().flush()  # in the history now (else within 5 s): the list's sparkline too
    user("admin", superuser=True)
    page = new_page()
    page.add_init_script(WATCH_CSP)
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: console.append(str(error)))

    login(page, "admin")
    response = page.goto(CHANGELIST)
    assert response.headers["content-security-policy"] == CSP
    assert page.locator("#result_list svg.rs-spark").count() == 1
    page.goto(f"{CHANGELIST}{policy.pk}/change/")
    page.wait_for_selector("#outcomes [data-chart=calls] path.rs-s-ok")
    box = page.locator("#outcomes [data-chart=latency] svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 20, box["y"] + 40)
    with page.expect_response(lambda r: "/outcomes/?range=day" in r.url) as answer:
        page.click("#outcomes .rs-ranges a[data-range=day]")
    assert answer.value.status == 200
    # Waits under this CSP go through locators: wait_for_function's polling evaluates strings.
    expect(page.locator("#outcomes .rs-unit[data-unit=per]").first).to_have_text("per minute")
    assert page.url.endswith("?range=day#outcomes")
    # The theme toggle (admin's own script) and the charts' redraw under the dark theme.
    page.click("button.theme-toggle")
    page.wait_for_timeout(100)
    assert page.evaluate("window.__violations") == []
    assert not [line for line in console if "Content Security Policy" in line or "Refused" in line]
    assert not [line for line in console if "Error" in line], console

    # The policy is in force: an inline style attribute added now is reported.
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<b style=\"color: red\">x</b>')")
    for _ in range(100):
        if page.evaluate("window.__violations.length"):
            break
        page.wait_for_timeout(50)
    assert page.evaluate("window.__violations")[0].startswith("style-src")


def test_without_javascript_the_page_shows_the_table_of_buckets(
    browser, live_server, django_db_setup, memory
):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=0)
    calls("payments-api", ok=6, failed=2)
    get_backend().flush()
    user("admin", superuser=True)
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        open_page = f"{CHANGELIST}{policy.pk}/change/"
        login(page, "admin")
        page.goto(open_page)
        assert page.locator("#outcomes .rs-charts").is_hidden()
        table = page.locator("#outcomes .rs-bucket-table")
        assert table.is_visible()  # the details element is open without the script
        row = table.locator("tbody tr").first.locator("td").all_inner_texts()
        assert row[1:4] == ["8", "2", "25.0 %"]
        page.click("#outcomes .rs-ranges a:text('last day')")  # a plain link, a new page
        assert page.url.endswith("?range=day#outcomes")
        assert page.locator("#outcomes .rs-ranges a.rs-current").inner_text() == "last day"
        row = table.locator("tbody tr").first.locator("td").all_inner_texts()
        assert row[1:3] == ["8", "2"] and row[0].endswith(":00")  # a minute bucket
    finally:
        context.close()


# --- how it looks --------------------------------------------------------------------------


@pytest.fixture
def an_hour_ago(settings):
    """The memory backend on a manual clock that starts 65 minutes before now."""
    clock = ManualClock(start_ms=(int(time.time()) - 65 * 60) * 1000)
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.memory.MemoryBackend",
        "OPTIONS": {"clock": clock},
    }
    return clock


def an_hour_of_traffic(clock, policy):
    """Steady traffic with an outage (the circuit opens, trial calls fail, it recovers) and a
    minute of a full bulkhead, 10 seconds at a time, sent to the history as it goes."""
    rnd = random.Random(16)

    @circuit_breaker(policy.name)
    def call(latency_ms, fail):
        clock.advance(latency_ms / 1000)
        if fail:
            raise Boom()

    backend, engine_policy = get_backend(), policy_from_values(policy)
    held = []
    for step in range(6 * 64):
        minute = step / 6
        started = clock.now_ms()
        outage = 34 <= minute < 40
        if 14 <= minute < 15:  # four slow calls in another process fill the cap
            held = [backend.acquire(policy.name, engine_policy) for _ in range(4)]
        for _ in range(round(14 + 6 * math.sin(step / 30) + rnd.random() * 4)):
            latency = rnd.lognormvariate(math.log(380 if outage else 45), 0.35)
            try:
                call(latency, outage and rnd.random() < 0.75)
            except (Boom, CircuitOpenError, BulkheadFullError):
                pass
        for ticket in held:
            backend.return_slot(ticket, engine_policy)
        held = []
        clock.advance(max(0.0, 10 - (clock.now_ms() - started) / 1000))
        backend.flush()
    events.flush(timeout=10)


def test_screenshots_of_the_outcome_charts(new_page, an_hour_ago, tmp_path):
    policy = BreakerPolicyFactory(
        name="payments-api", description="Card payments provider.", failure_threshold=0,
        failure_rate_threshold=50, minimum_calls=10, window_seconds=60, slow_call_ms=800,
        recovery_timeout=60, max_concurrent_calls=4, alert_on_open=False,
    )  # fmt: skip
    an_hour_of_traffic(an_hour_ago, policy)
    user("admin", superuser=True)
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    page = new_page()
    login(page, "admin")
    for width in (1366, 1920):
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{CHANGELIST}{policy.pk}/change/")
            section = page.locator("#outcomes")
            page.wait_for_selector("#outcomes [data-chart=calls] path.rs-s-ok")
            assert page.locator("#outcomes [data-chart=calls] line.rs-transition").count() >= 2
            assert page.locator("#outcomes [data-chart=rejected] path.rs-s-bulkhead").count() == 1
            readable(page, width)
            section.scroll_into_view_if_needed()
            box = page.locator("#outcomes [data-chart=calls] svg").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.56, box["y"] + 60)  # as it opens
            assert "p99" in text_of(page, READOUT)
            dark = page.locator("#outcomes .rs-tick").first.evaluate(
                "el => getComputedStyle(el).fill"
            )
            assert dark == ("rgb(208, 208, 208)" if scheme == "dark" else "rgb(102, 102, 102)")
            name = "admin-outcomes.png" if (width, scheme) == (1366, "light") else None
            path = target / (name or f"admin-outcomes-{width}-{scheme}.png")
            if name is None and SCREENSHOTS:
                path = tmp_path / path.name  # only one picture goes into the docs
            section.screenshot(path=path)
            assert path.stat().st_size > 20_000

    # The admin's theme toggle (light system preference, dark chosen) recolours the charts.
    page.emulate_media(color_scheme="light")
    page.evaluate("localStorage.setItem('theme', 'dark')")
    page.reload()
    page.wait_for_selector("#outcomes svg.rs-svg")
    fill = page.locator("#outcomes .rs-tick").first.evaluate("el => getComputedStyle(el).fill")
    assert fill == "rgb(208, 208, 208)"


def readable(page, width):
    """Two charts side by side; no tick label overlaps another or leaves its chart."""
    figures = page.locator("#outcomes figure.rs-chart")
    boxes = [figures.nth(i).bounding_box() for i in range(4)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[2]["y"] == boxes[3]["y"]
    assert 400 < boxes[0]["width"] < width / 2
    labels = page.evaluate(
        """() => [...document.querySelectorAll('#outcomes svg.rs-svg')].map((svg) => {
            const frame = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('.rs-tick')].map((t) => {
                const b = t.getBoundingClientRect();
                return {x0: b.left - frame.left, x1: b.right - frame.left, y0: b.top, y1: b.bottom,
                        inside: b.left >= frame.left && b.right <= frame.right};
            });
        })"""
    )
    for chart in labels:
        assert len(chart) >= 6 and all(label["inside"] for label in chart)
        for i, a in enumerate(chart):
            for b in chart[i + 1 :]:
                apart = (
                    a["x1"] <= b["x0"]
                    or b["x1"] <= a["x0"]
                    or a["y1"] <= b["y0"]
                    or b["y1"] <= a["y0"]
                )
                assert apart, (a, b)
