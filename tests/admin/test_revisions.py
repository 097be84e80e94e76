"""Policy revisions in the admin: recorded from the form and the buttons, listed with their diff
on the policy page, reverted with one POST (permission, CSRF, audit), bad input refused."""

import pytest
from django.contrib.admin.models import LogEntry

from resilience.models import BreakerPolicy, CircuitEvent, PolicyRevision
from tests.admin.test_permissions import url
from tests.factories import BreakerPolicyFactory
from tests.security.admin_forms import form_data

pytestmark = pytest.mark.django_db


def revert_url(policy, revision):
    return url(policy, f"revisions/{revision.pk if hasattr(revision, 'pk') else revision}/revert")


@pytest.fixture
def edited(superuser, client_for):
    """payments-api created (revision 1), then edited in the admin by root (revision 2)."""
    policy = BreakerPolicyFactory(name="payments-api", failure_threshold=5)
    response = client_for(superuser).post(
        url(policy), form_data(policy, failure_threshold=2, change_reason="INC-42 tighter")
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    return policy


def latest(policy):
    return PolicyRevision.objects.filter(policy=policy).order_by("-id").first()


def first(policy):
    return PolicyRevision.objects.filter(policy=policy).order_by("id").first()


def messages(response):
    return [str(m) for m in response.context["messages"]]


def test_an_admin_edit_is_a_revision_with_actor_reason_and_diff(edited, superuser):
    revision = latest(edited)
    assert (revision.source, revision.actor, revision.reason) == (
        "admin",
        superuser,
        "INC-42 tighter",
    )
    assert revision.changes == {"failure_threshold": [5, 2]}


def test_the_force_open_button_is_a_revision(superuser, client_for):
    policy = BreakerPolicyFactory(name="payments-api")
    client_for(superuser).post(url(policy, "force-open"), {"reason": "provider down"})
    revision = latest(policy)
    assert (revision.source, revision.actor, revision.reason) == (
        "admin",
        superuser,
        "provider down",
    )
    assert revision.changes == {"mode": ["enforced", "forced_open"]}


def test_the_policy_page_lists_revisions_with_their_diff_and_revert_buttons(
    edited, superuser, client_for
):
    html = client_for(superuser).get(url(edited)).content.decode()
    assert 'id="revisions"' in html
    assert "failure threshold: 5 → 2" in html
    assert "INC-42 tighter" in html
    assert html.count('class="button rs-revert"') == 1  # not on the newest: it is current
    assert f'formaction="{revert_url(edited, first(edited))}"' in html
    assert "all revisions of this policy" in html


def test_revert_is_one_post_audited_and_a_revision(edited, superuser, client_for):
    target = first(edited)
    response = client_for(superuser).post(
        revert_url(edited, target), {"reason": "too twitchy"}, follow=True
    )
    assert messages(response) == [
        f"“payments-api” now has the values of revision {target.pk} "
        f"(new revision {latest(edited).pk})."
    ]
    assert BreakerPolicy.objects.get(pk=edited.pk).failure_threshold == 5
    made = latest(edited)
    assert (made.reverted_from, made.actor, made.source) == (target, superuser, "admin")
    assert made.changes == {"failure_threshold": [2, 5]}
    event = CircuitEvent.objects.filter(kind="policy_changed").latest("id")
    assert event.actor == superuser and "failure threshold: 2 → 5" in event.reason
    entry = LogEntry.objects.filter(object_id=str(edited.pk)).latest("id")
    assert entry.get_change_message() == f"Reverted to revision {target.pk}. Reason: too twitchy"


def _unchanged(policy):
    saved = BreakerPolicy.objects.get(pk=policy.pk)
    assert (saved.version, saved.failure_threshold) == (policy.version, policy.failure_threshold)
    return PolicyRevision.objects.filter(policy=policy).count()


def test_get_is_refused(edited, superuser, client_for):
    assert client_for(superuser).get(revert_url(edited, first(edited))).status_code == 405
    assert _unchanged(edited) == 2


def test_without_the_change_permission_it_is_403(edited, make_user, client_for):
    viewer = make_user("viewer", "resilience.view_breakerpolicy", "resilience.force_circuit")
    client = client_for(viewer)
    assert 'class="button rs-revert"' not in client.get(url(edited)).content.decode()
    assert client.post(revert_url(edited, first(edited))).status_code == 403
    assert _unchanged(edited) == 2


def test_a_revert_that_changes_the_mode_needs_force_circuit(superuser, make_user, client_for):
    policy = BreakerPolicyFactory(name="payments-api")
    client_for(superuser).post(url(policy, "force-open"), {"reason": "down"})
    policy.refresh_from_db()
    editor = make_user("editor", "resilience.change_breakerpolicy")
    assert client_for(editor).post(revert_url(policy, first(policy))).status_code == 403
    assert BreakerPolicy.objects.get(pk=policy.pk).mode == "forced_open"


def test_revert_needs_a_csrf_token(edited, superuser, client_for):
    client = client_for(superuser, enforce_csrf_checks=True)
    assert client.post(revert_url(edited, first(edited))).status_code == 403
    assert _unchanged(edited) == 2
    client.get(url(edited))  # the CSRF cookie, as a browser gets it
    token = client.cookies["csrftoken"].value
    response = client.post(revert_url(edited, first(edited)), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert BreakerPolicy.objects.get(pk=edited.pk).failure_threshold == 5


@pytest.mark.parametrize(
    ("which", "message"),
    [
        (
            "other",
            "Nothing was reverted: Revision {id} belongs to circuit search, not to payments-api.",
        ),
        ("missing", "Nothing was reverted: There is no revision 999999."),
        ("current", "Nothing was reverted: The policy already has the values of revision {id}"),
        ("invalid", "Nothing was reverted: ignore_exceptions: gone.module.Error"),
    ],
)
def test_bad_reverts_are_clear_errors_and_save_nothing(
    edited, superuser, client_for, which, message
):
    target = {
        "other": lambda: first(BreakerPolicyFactory(name="search")),
        "missing": lambda: 999_999,
        "current": lambda: latest(edited),
        "invalid": lambda: first(edited),
    }[which]()
    if which == "invalid":  # as if an exception class was removed since
        PolicyRevision.objects.filter(pk=target.pk).update(
            values={**target.values, "ignore_exceptions": "gone.module.Error"}
        )
    count = _unchanged(edited)
    response = client_for(superuser).post(revert_url(edited, target), follow=True)
    shown = messages(response)
    assert len(shown) >= 1
    assert shown[0].startswith(message.format(id=getattr(target, "pk", target))), shown
    assert _unchanged(edited) == count
    assert not LogEntry.objects.filter(change_message__contains="Reverted").exists()


def test_the_revision_log_is_read_only_and_filtered_by_circuit(edited, superuser, client_for):
    client = client_for(superuser)
    html = client.get("/admin/resilience/policyrevision/?circuit=payments-api").content.decode()
    assert "failure threshold: 5 → 2" in html
    revision = latest(edited)
    assert client.get(f"/admin/resilience/policyrevision/{revision.pk}/change/").status_code == 200
    assert client.get("/admin/resilience/policyrevision/add/").status_code == 403
    response = client.post(
        f"/admin/resilience/policyrevision/{revision.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert PolicyRevision.objects.filter(pk=revision.pk).exists()


def test_a_revert_that_changes_the_kill_switch_end_needs_force_circuit(
    superuser, make_user, client_for
):
    """Same mode (forced open), another end: a change-only user must not make a time-boxed
    kill switch last for ever (``forced_until`` is not even a form field)."""
    policy = BreakerPolicyFactory(name="payments-api")
    root = client_for(superuser)
    root.post(url(policy, "force-open"), {"reason": "down"})  # forced open, no end
    forever = latest(policy)
    root.post(url(policy, "release"), {"reason": "back"})
    root.post(url(policy, "force-open"), {"reason": "down again", "duration": "15m"})
    policy.refresh_from_db()
    assert policy.mode == "forced_open" and policy.forced_until is not None, policy.forced_until
    editor = make_user("editor", "resilience.change_breakerpolicy")
    assert client_for(editor).post(revert_url(policy, forever)).status_code == 403
    assert BreakerPolicy.objects.get(pk=policy.pk).forced_until == policy.forced_until
