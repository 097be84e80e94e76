"""The policy change form's Preview: the replay of a recorded story under the edited values,
without saving; permission, CSRF and invalid values."""

import re

import pytest
from django.contrib.admin.models import LogEntry

from resilience.models import BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory
from tests.security.admin_forms import form_data
from tests.support import replaystory

pytestmark = pytest.mark.django_db(transaction=True)  # events are stored by another thread
NAME = "preview-story"
ROW = re.compile(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td><td>(.*?)</td></tr>')


@pytest.fixture
def policy(_admin_backend, clock):
    policy = BreakerPolicyFactory(name=NAME, **replaystory.POLICY)
    registry.refresh()
    replaystory.record(NAME, clock, _admin_backend)
    return BreakerPolicy.objects.get(pk=policy.pk)


def url(policy):
    return f"/admin/resilience/breakerpolicy/{policy.pk}/change/"


def preview(client, policy, **changes):
    data = form_data(policy, **changes, _preview="Preview", _preview_hours="1")
    return client.post(url(policy), data)


def table(response):
    rows = ROW.findall(response.content.decode())
    return {label: (actual, proposed) for label, actual, proposed in rows}


def stored(policy):
    return BreakerPolicy.objects.values().get(pk=policy.pk)


def test_preview_shows_the_replay_and_saves_nothing(policy, superuser, client_for):
    before = stored(policy)
    response = preview(client_for(superuser), policy, failure_threshold=3, recovery_timeout=80)
    assert response.status_code == 200
    assert "Preview (not saved)" in response.content.decode()
    # What happened next to tests/test_replay.py's hand-worked stricter policy.
    assert table(response) == {
        "openings": ("1", "1"),
        "time open (s)": ("60.5", "80.25"),
        "calls refused": ("12", "33"),
        "calls run": ("49", "28"),
        "failures among them": ("9", "3"),
    }
    assert "failure threshold = 3" in response.content.decode()
    # The form keeps the edited values, so Save stores exactly what was previewed.
    assert re.search(r'name="failure_threshold" value="3"', response.content.decode())
    assert 'class="errornote"' not in response.content.decode()
    assert stored(policy) == before
    assert not LogEntry.objects.exists()
    assert not CircuitEvent.objects.filter(kind="policy_changed").exists()
    assert registry.get(NAME).policy.failure_threshold == 5


def test_preview_of_the_current_values_reproduces_what_happened(policy, superuser, client_for):
    response = preview(client_for(superuser), policy)
    rows = table(response)
    assert all(actual == proposed for actual, proposed in rows.values())
    assert "nothing (the current policy)" in response.content.decode()


def test_invalid_values_show_the_form_errors(policy, superuser, client_for):
    before = stored(policy)
    response = preview(client_for(superuser), policy, failure_threshold=-1, recovery_timeout="nan")
    assert response.status_code == 200
    assert 'class="errornote"' in response.content.decode()
    assert "Ensure this value is greater than or equal to 0." in response.content.decode()
    assert 'id="preview"' not in response.content.decode()
    assert stored(policy) == before


def test_the_button_is_for_those_who_may_change(policy, make_user, client_for):
    editor = client_for(make_user("editor", "resilience.change_breakerpolicy"))
    viewer = client_for(make_user("viewer", "resilience.view_breakerpolicy"))
    assert 'name="_preview"' in editor.get(url(policy)).content.decode()
    assert 'name="_preview"' not in viewer.get(url(policy)).content.decode()
    assert "calls refused" in preview(editor, policy, failure_threshold=3).content.decode()


def test_preview_needs_the_change_permission(policy, make_user, client_for):
    before = stored(policy)
    viewer = client_for(make_user("viewer", "resilience.view_breakerpolicy"))
    assert preview(viewer, policy, failure_threshold=3).status_code == 403
    assert stored(policy) == before


def test_preview_needs_the_csrf_token(policy, superuser, client_for):
    before = stored(policy)
    client = client_for(superuser, enforce_csrf_checks=True)
    assert preview(client, policy, failure_threshold=3).status_code == 403
    assert stored(policy) == before
    # The same POST with the token previews: it was the token that was missing.
    client.get(url(policy))
    token = client.cookies["csrftoken"].value
    data = form_data(policy, failure_threshold=3, _preview="Preview", csrfmiddlewaretoken=token)
    response = client.post(url(policy), data)
    assert response.status_code == 200 and 'id="preview"' in response.content.decode()
    assert stored(policy) == before


def test_no_inline_script_or_style(policy, superuser, client_for):
    response = preview(client_for(superuser), policy, failure_threshold=3)
    section = response.content.decode()[response.content.decode().index('id="preview"') :]
    section = section[: section.index("</section>")]
    assert "<script" not in section and "style=" not in section and "<style" not in section


def test_a_week_of_a_busy_circuit_does_not_hold_the_request(
    _admin_backend, clock, superuser, client_for
):
    """A replay costs an engine step per failure (and per call near one): a week of 100
    calls/s with 2 % failures is minutes of CPU. The Preview stops at its budget and says so
    instead of holding a worker that long; the command replays it in full."""
    import time

    from resilience import series
    from tests.backends.history_contract import vector

    busy = BreakerPolicyFactory(name="preview-busy", failure_threshold=5, recovery_timeout=60)
    now = clock.now_ms() // series.COARSE_MS * series.COARSE_MS
    week = range(now - series.COARSE_KEEP_MS + series.COARSE_MS, now + 1, series.COARSE_MS)
    assert _admin_backend.store_history(
        {start: {busy.name: vector(calls=6_000, failures=120)} for start in week}
    )
    data = form_data(busy, failure_threshold=3, _preview="Preview", _preview_hours="168")
    began = time.monotonic()
    response = client_for(superuser).post(url(busy), data)
    took = time.monotonic() - began
    assert response.status_code == 200
    assert "Too many calls to replay within a page request" in response.content.decode()
    assert "manage.py resilience replay preview-busy --hours 168" in response.content.decode()
    assert took < 15, took  # unbounded: about 20 s on the CI machine
