"""The 503 page of CircuitBreakerMiddleware: a linked stylesheet (no inline style, for sites
under a strict Content-Security-Policy), rendered even when static files cannot name it, and
overridable block by block. (Its look, light and dark, in tests/browser/test_unavailable_page.)"""

import re

import pytest

from resilience.middleware import STYLESHEET

pytestmark = [pytest.mark.urls("tests.support.site_urls"), pytest.mark.usefixtures("middleware")]
BROWSER = "text/html,application/xhtml+xml"


def page(client):
    response = client.get("/open/", headers={"accept": BROWSER})
    assert response.status_code == 503
    return response.content.decode()


def test_the_page_links_its_stylesheet_and_has_no_inline_style_or_script(client):
    html = page(client)
    assert f'<link rel="stylesheet" href="/static/{STYLESHEET}">' in html
    assert "<style" not in html and "style=" not in html and "<script" not in html
    assert '<meta name="color-scheme" content="light dark">' in html


@pytest.mark.parametrize(
    "broken",
    [
        {"STATIC_URL": None},
        # collectstatic never ran: Django's manifest storage raises ValueError for any name.
        {
            "STORAGES": {
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "staticfiles": {
                    "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
                },
            }
        },
    ],
    ids=["no STATIC_URL", "manifest without the file"],
)
def test_a_static_set_up_that_cannot_name_the_stylesheet_still_gets_the_503(
    client, settings, broken
):
    for name, value in broken.items():
        setattr(settings, name, value)
    html = page(client)
    assert "<link" not in html  # unstyled, but a 503 with its text, not a 500
    assert "Service temporarily unavailable" in html and "Retry in 13 seconds." in html


def test_a_project_can_override_one_block(client, settings, tmp_path):
    (tmp_path / "resilience").mkdir()
    (tmp_path / "resilience" / "circuit_open.html").write_text(
        '{% extends "resilience/circuit_open.html" %}'
        "{% block content %}<h1>Payments are paused</h1><p>Back in {{ retry_after }} s.</p>"
        "{% endblock %}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    html = page(client)
    block = r"<main[^>]*>\s*<h1>Payments are paused</h1><p>Back in 13 s.</p>\s*</main>"
    assert re.search(block, html)
    assert f"/static/{STYLESHEET}" in html  # the rest of the page is kept
