"""Maintenance windows: inline on the policy page; end before start and overlaps are refused
with a clear error and nothing saved."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from resilience.models import MaintenanceWindow
from tests.factories import BreakerPolicyFactory
from tests.security.admin_forms import form_data

pytestmark = pytest.mark.django_db

T0 = datetime(2031, 5, 1, 22, 0, tzinfo=UTC)


def window(policy, start, hours, **extra):
    return MaintenanceWindow(
        policy=policy, starts_at=start, ends_at=start + timedelta(hours=hours), **extra
    )


def inline(data, rows):
    """``data`` (a policy form POST) with ``rows`` of (start, end, mode, reason) as new windows
    after the existing ones."""
    first = int(data["maintenance_windows-TOTAL_FORMS"])
    for i, (start, end, mode, reason) in enumerate(rows, start=first):
        prefix = f"maintenance_windows-{i}"
        data[f"{prefix}-starts_at_0"], data[f"{prefix}-starts_at_1"] = start.split()
        data[f"{prefix}-ends_at_0"], data[f"{prefix}-ends_at_1"] = end.split()
        data[f"{prefix}-mode"] = mode
        data[f"{prefix}-reason"] = reason
    data["maintenance_windows-TOTAL_FORMS"] = first + len(rows)
    return data


class TestModel:
    def test_end_before_start(self):
        policy = BreakerPolicyFactory(name="pay")
        bad = window(policy, T0, -1)
        with pytest.raises(ValidationError, match="end after it starts"):
            bad.full_clean()
        with pytest.raises(IntegrityError), transaction.atomic():  # the database agrees
            bad.save()

    def test_overlap_with_a_saved_window(self):
        policy = BreakerPolicyFactory(name="pay")
        window(policy, T0, 2).save()
        with pytest.raises(ValidationError, match="Overlaps the window"):
            window(policy, T0 + timedelta(hours=1), 2).full_clean()
        window(policy, T0 + timedelta(hours=2), 1).full_clean()  # touching is fine
        window(BreakerPolicyFactory(name="other"), T0, 2).full_clean()  # another policy

    def test_a_mode_outside_the_three_is_refused(self):
        with pytest.raises(ValidationError, match="mode"):
            window(BreakerPolicyFactory(name="pay"), T0, 1, mode="enforced").full_clean()


class TestAdmin:
    URL = "/admin/resilience/breakerpolicy/{}/change/"

    def test_add_a_window_inline(self, admin_client, admin_user):
        policy = BreakerPolicyFactory(name="pay")
        html = admin_client.get(self.URL.format(policy.pk)).content.decode()
        assert "maintenance_windows-TOTAL_FORMS" in html and "Maintenance windows" in html
        data = inline(
            form_data(policy), [("2031-05-01 22:00:00", "2031-05-02 01:00:00", "monitor", "PSP")]
        )
        response = admin_client.post(self.URL.format(policy.pk), data)
        assert response.status_code == 302, response.content.decode()[:3000]
        saved = MaintenanceWindow.objects.get()
        assert (saved.starts_at, saved.ends_at) == (T0, T0 + timedelta(hours=3))
        assert (saved.mode, saved.reason, saved.created_by) == ("monitor", "PSP", admin_user)
        html = admin_client.get(self.URL.format(policy.pk)).content.decode()
        assert "upcoming" in html

    @pytest.mark.parametrize(
        ("rows", "message"),
        [
            (
                [("2031-05-01 22:00:00", "2031-05-01 21:00:00", "monitor", "")],
                "The window must end after it starts.",
            ),
            (
                [
                    ("2031-05-01 22:00:00", "2031-05-02 01:00:00", "monitor", ""),
                    ("2031-05-02 00:00:00", "2031-05-02 02:00:00", "disabled", ""),
                ],
                "Two of these maintenance windows overlap.",
            ),
            (
                [("2031-05-01 23:00:00", "2031-05-01 23:30:00", "forced_open", "")],
                "Overlaps the window from 2031-05-01T22:00:00+00:00",
            ),
        ],
        ids=["end-before-start", "overlap-in-one-submission", "overlap-with-a-saved-one"],
    )
    def test_bad_windows_are_refused_and_nothing_is_saved(self, admin_client, rows, message):
        policy = BreakerPolicyFactory(name="pay", failure_threshold=5)
        window(policy, T0, 3).save()
        data = inline(form_data(policy, failure_threshold=9), rows)
        response = admin_client.post(self.URL.format(policy.pk), data)
        assert response.status_code == 200  # the form again, with the error
        assert message in response.content.decode()
        assert MaintenanceWindow.objects.count() == 1
        policy.refresh_from_db()
        assert policy.failure_threshold == 5  # the policy edit is not saved either
