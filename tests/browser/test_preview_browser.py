"""The change form's Preview in a real Chromium with JavaScript off, under a strict CSP."""

import pytest

from resilience.models import BreakerPolicy
from resilience.policies import registry
from tests.browser.scenes import login
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.support import replaystory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


def test_preview_without_javascript(new_page, memory_backend, clock):
    policy = BreakerPolicyFactory(name="preview-browser", **replaystory.POLICY)
    registry.refresh()
    replaystory.record(policy.name, clock, memory_backend)
    UserFactory(username="admin", is_superuser=True)
    before = BreakerPolicy.objects.values().get(pk=policy.pk)

    page = new_page(java_script_enabled=False)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else 0)

    def with_csp(route):
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": CSP}
        route.fulfill(response=response, headers=headers)

    page.route("**/admin/resilience/**", with_csp)
    login(page, "admin")
    page.goto(f"/admin/resilience/breakerpolicy/{policy.pk}/change/")
    page.fill("#id_failure_threshold", "3")
    page.fill("#id_recovery_timeout", "80")
    page.locator(".submit-row input[name=_preview]").first.click()
    panel = page.locator("#preview")
    panel.wait_for()
    rows = {
        row.locator("th").inner_text(): row.locator("td").all_inner_texts()
        for row in panel.locator("tbody tr").all()
    }
    assert rows["openings"] == ["1", "1"]
    assert rows["calls refused"] == ["12", "33"]
    assert page.input_value("#id_failure_threshold") == "3"
    assert BreakerPolicy.objects.values().get(pk=policy.pk) == before

    page.fill("#id_failure_threshold", "-1")
    page.locator(".submit-row input[name=_preview]").first.click()
    page.locator(".errornote").wait_for()
    assert page.locator("#preview").count() == 0
    assert BreakerPolicy.objects.values().get(pk=policy.pk) == before
    assert violations == []
