"""The in-process policy registry: refresh reads only what changed."""

import pytest

from resilience.models import BreakerPolicy
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory

pytestmark = pytest.mark.django_db


def test_refresh_reads_only_changed_rows(django_assert_num_queries):
    for i in range(20):
        BreakerPolicyFactory(name=f"bulk-{i}", failure_threshold=5)
    assert registry.refresh()
    assert not registry.refresh()  # nothing changed: one aggregate query, nothing reloaded
    BreakerPolicy.objects.filter(name="bulk-3").update(failure_threshold=2)
    with django_assert_num_queries(3):  # the stamp, the versions, then the changed rows only
        assert registry.refresh()
    assert registry.get("bulk-3").policy.failure_threshold == 2
    assert registry.get("bulk-4").policy.failure_threshold == 5


def test_refresh_sees_added_and_deleted_rows():
    BreakerPolicyFactory(name="keep", failure_threshold=3)
    doomed = BreakerPolicyFactory(name="doomed", failure_threshold=1)
    registry.refresh()
    assert registry.get("doomed").policy.failure_threshold == 1
    BreakerPolicyFactory(name="added", failure_threshold=7)
    registry.refresh()
    assert registry.get("added").policy.failure_threshold == 7
    doomed.delete()
    registry.refresh()
    assert registry.get("doomed").policy.failure_threshold == 5  # back to the defaults
    assert registry.get("keep").policy.failure_threshold == 3


def test_first_use_schedules_the_row_and_refresh_creates_it(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "DEFAULT_POLICY": {"failure_threshold": 9}}
    assert registry.get("fresh-circuit").policy.failure_threshold == 9
    assert not BreakerPolicy.objects.filter(name="fresh-circuit").exists()  # no write on a call
    registry.refresh()
    assert BreakerPolicy.objects.get(name="fresh-circuit").failure_threshold == 9


def test_an_edit_with_an_older_timestamp_still_propagates():
    # Hosts' clocks differ and transactions commit out of order: versions, not times, count.
    from datetime import timedelta

    from django.utils import timezone

    BreakerPolicyFactory(name="skew-a", failure_threshold=5)
    BreakerPolicyFactory(name="skew-b", failure_threshold=5)
    registry.refresh()
    now = timezone.now()
    BreakerPolicy.objects.filter(name="skew-b").update(
        failure_threshold=4, updated_at=now + timedelta(seconds=5)
    )
    registry.refresh()
    BreakerPolicy.objects.filter(name="skew-a").update(
        failure_threshold=9, updated_at=now + timedelta(seconds=1)
    )
    registry.refresh()
    assert registry.get("skew-a").policy.failure_threshold == 9
    assert registry.get("skew-b").policy.failure_threshold == 4


def test_a_failing_first_load_does_not_abort_the_callers_transaction(monkeypatch):
    # E.g. the table is not migrated yet: on PostgreSQL a failed query inside the caller's
    # atomic block would poison it, unless the registry's query runs in a savepoint.
    from django.db import connection, transaction

    def missing_table(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM resilience_no_such_table")

    with transaction.atomic():
        monkeypatch.setattr(BreakerPolicy.objects, "filter", missing_table)
        resolved = registry.get("in-transaction")
        monkeypatch.undo()
        assert resolved.policy.failure_threshold == 5  # defaults meanwhile
        assert BreakerPolicy.objects.count() == 0  # the transaction is still usable
