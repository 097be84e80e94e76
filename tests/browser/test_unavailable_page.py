"""The middleware's 503 page in Chromium, light and dark, under a strict Content-Security-Policy:
styled by its stylesheet, readable (WCAG contrast), nothing blocked."""

import os
from pathlib import Path

import pytest
from django.test import Client

from tests.browser.layout import contrast_of

pytestmark = [pytest.mark.browser, pytest.mark.urls("tests.support.site_urls")]

SCREENSHOTS = os.environ.get("RESILIENCE_SCREENSHOTS")
CSP = "default-src 'self'; style-src 'self'; script-src 'none'"
TEXTS = ("h1", ".rs-status", ".rs-unavailable-box > p:nth-of-type(2)", ".rs-retry", ".rs-again")


@pytest.fixture
def refusal(settings):
    """The body the middleware answers a browser with when a view's circuit is open."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "resilience.middleware.CircuitBreakerMiddleware"]
    response = Client().get("/open/", headers={"accept": "text/html"})
    assert response.status_code == 503
    return response.content.decode()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_503_page_is_styled_and_readable(new_page, live_server, refusal, scheme, tmp_path):
    page = new_page()
    page.set_viewport_size({"width": 1366, "height": 768})
    page.emulate_media(color_scheme=scheme)
    blocked = []
    page.on("console", lambda message: blocked.append(message.text))
    # The middleware's own bytes, served from the live server's origin (which serves the
    # stylesheet) with the strictest header a site would send.
    page.route(
        f"{live_server.url}/checkout/",
        lambda route: route.fulfill(
            status=503, body=refusal, content_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": CSP},
        ),
    )  # fmt: skip
    page.goto("/checkout/")
    box = page.locator(".rs-unavailable-box")
    assert box.evaluate("el => getComputedStyle(el).borderTopWidth") == "4px"  # stylesheet in
    assert [text for text in blocked if "Content Security Policy" in text] == []
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(13, 17, 23)") is (scheme == "dark")
    for selector in TEXTS:
        assert contrast_of(page.locator(selector)) >= 4.5, selector
    card = box.bounding_box()
    assert card["width"] <= 640 and card["x"] > 300  # a centred card, not a wall of text
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    page.screenshot(path=target / f"unavailable-{scheme}.png")
