"""Policy revisions in a real Chromium: an edit is listed with its diff, one click reverts it,
and the reverted values reach another process through the database and Redis."""

import pytest

from resilience.models import BreakerPolicy, CircuitEvent, PolicyRevision
from tests.browser.scenes import login
from tests.browser.test_admin_browser import CHANGELIST, user
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_edit_then_revert_with_one_click(new_page, other_process):
    policy = BreakerPolicyFactory(
        name="demo-upstream", failure_threshold=5, recovery_timeout=600, alert_on_open=False
    )
    user("admin", superuser=True)
    assert other_process.ask("policy")["failure_threshold"] == 5
    change = f"{CHANGELIST}{policy.pk}/change/"

    page = new_page()
    login(page, "admin")
    page.goto(change)
    page.fill("#id_failure_threshold", "2")
    page.fill("#id_change_reason", "INC-7 trip sooner")
    page.click("input[name=_continue]")
    page.wait_for_url(f"**{change}")
    other_process.wait_for("policy", lambda answer: answer["failure_threshold"] == 2)

    rows = page.locator("#revisions tbody tr")
    assert rows.count() == 2
    newest = rows.nth(0).inner_text()
    assert "failure threshold: 5 → 2" in newest and "INC-7 trip sooner" in newest
    assert "current" in newest
    assert rows.nth(0).locator("button.rs-revert").count() == 0

    page.fill("#id_revert_reason", "too twitchy")
    rows.nth(1).get_by_role("button", name="Revert to this").click()
    page.wait_for_url(f"**{change}")
    first = PolicyRevision.objects.filter(policy=policy).order_by("id").first()
    assert f"now has the values of revision {first.pk}" in page.locator(".messagelist").inner_text()
    assert page.locator("#id_failure_threshold").input_value() == "5"
    assert BreakerPolicy.objects.get(pk=policy.pk).failure_threshold == 5
    other_process.wait_for("policy", lambda answer: answer["failure_threshold"] == 5)

    made = PolicyRevision.objects.filter(policy=policy).order_by("-id").first()
    assert (made.reverted_from_id, made.actor.username, made.reason) == (
        first.pk,
        "admin",
        "too twitchy",
    )
    assert "failure threshold: 2 → 5" in page.locator("#revisions tbody tr").nth(0).inner_text()
    event = CircuitEvent.objects.filter(kind="policy_changed").latest("id")
    assert event.reason.startswith(f"Reverted to revision {first.pk}")


def test_a_viewer_sees_revisions_but_cannot_revert(new_page, shared_settings):
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=5)
    policy.failure_threshold = 3
    policy.save()
    user("viewer", "view_breakerpolicy")
    change = f"{CHANGELIST}{policy.pk}/change/"

    page = new_page()
    login(page, "viewer")
    page.goto(change)
    assert "failure threshold: 5 → 3" in page.locator("#revisions").inner_text()
    assert page.locator("button.rs-revert").count() == 0
    first = PolicyRevision.objects.filter(policy=policy).order_by("id").first()
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{CHANGELIST}{policy.pk}/revisions/{first.pk}/revert/",
        form={"csrfmiddlewaretoken": token},
    )
    assert response.status == 403
    assert BreakerPolicy.objects.get(pk=policy.pk).failure_threshold == 3
