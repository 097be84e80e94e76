"""The in-process policy registry: refresh reads only what changed."""

import asyncio
import time

import pytest
from django.db import OperationalError, connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from resilience import circuit_breaker
from resilience.models import BreakerPolicy
from resilience.policies import FIRST_LOAD_WAIT_SECONDS, refresh_seconds, registry
from tests.factories import BreakerPolicyFactory
from tests.support.waiting import wait_until

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


def test_the_first_call_of_a_new_circuit_runs_no_sql(django_assert_num_queries):
    """Before: the first call of each circuit read its row on the call path (1 query, and
    with a hung database the call hung with it)."""
    BreakerPolicyFactory(name="first-call", failure_threshold=2)
    registry.clear()  # a new process: no row read yet

    @circuit_breaker("first-call")
    def call():
        return "done"

    with django_assert_num_queries(0):
        assert call() == "done"
        assert call() == "done"
        assert registry.get("first-call").policy.failure_threshold == 5  # defaults meanwhile
        assert registry.get("no-row-yet").policy.failure_threshold == 5
    epoch = registry.epoch
    registry.refresh()  # what the background thread does
    assert registry.epoch != epoch  # breakers re-route to the row
    assert registry.get("first-call").policy.failure_threshold == 2
    assert BreakerPolicy.objects.filter(name="no-row-yet").exists()  # created in the background


def test_until_its_row_is_read_a_circuit_runs_under_its_settings_policy(settings):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "DEFAULT_POLICY": {"failure_threshold": 9},
        "POLICIES": {"named": {"failure_threshold": 4}},
    }
    BreakerPolicyFactory(name="named", failure_threshold=3)
    registry.clear()
    assert registry.get("named").policy.failure_threshold == 4
    assert registry.get("other").policy.failure_threshold == 9
    registry.refresh()
    assert registry.get("named").policy.failure_threshold == 3


def test_a_row_saved_or_deleted_here_applies_here_at_once_without_a_query(
    django_assert_num_queries,
):
    row = BreakerPolicyFactory(name="edited-here", failure_threshold=3)
    with django_assert_num_queries(0):
        assert registry.get("edited-here").policy.failure_threshold == 3
    row.failure_threshold = 7
    row.save()
    with django_assert_num_queries(0):
        assert registry.get("edited-here").policy.failure_threshold == 7
    row.delete()
    with django_assert_num_queries(0):
        assert registry.get("edited-here").policy.failure_threshold == 5


def test_invalidate_keeps_the_values_in_force_until_the_row_is_read(
    django_assert_num_queries,
):
    BreakerPolicyFactory(name="bulk-edited", failure_threshold=3)
    BreakerPolicy.objects.filter(name="bulk-edited").update(failure_threshold=8)  # invalidates
    with django_assert_num_queries(0):
        assert registry.get("bulk-edited").policy.failure_threshold == 3
    registry.refresh()
    assert registry.get("bulk-edited").policy.failure_threshold == 8


def test_a_failed_read_keeps_the_defaults_and_is_retried(monkeypatch):
    BreakerPolicyFactory(name="retried", failure_threshold=2)
    registry.clear()
    assert registry.get("retried").policy.failure_threshold == 5

    def unavailable(*args, **kwargs):
        raise OperationalError("database unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(BreakerPolicy.objects, "filter", unavailable)
        with pytest.raises(OperationalError):
            registry.refresh()
    assert registry.get("retried").policy.failure_threshold == 5
    registry.refresh()
    assert registry.get("retried").policy.failure_threshold == 2


@pytest.mark.django_db(transaction=True)
def test_with_the_background_thread_a_first_call_waits_at_most_the_bound():
    """The real thread, a real database: the caller runs no query and waits at most
    FIRST_LOAD_WAIT_SECONDS; the row applies once the thread has read it."""
    BreakerPolicyFactory(name="threaded", failure_threshold=2)
    registry.clear()
    registry.background = True

    @circuit_breaker("threaded")
    def call():
        return "done"

    with CaptureQueriesContext(connection) as queries:  # this thread's connection
        started = time.monotonic()
        assert call() == "done"
        elapsed = time.monotonic() - started
    assert len(queries) == 0
    assert elapsed < FIRST_LOAD_WAIT_SECONDS + 0.25  # slack for a loaded machine
    read = wait_until(lambda: registry.get("threaded").policy.failure_threshold == 2, 10)
    assert read, "the background thread never read the row"


@pytest.mark.django_db(transaction=True)
def test_inside_an_event_loop_a_first_call_does_not_wait():
    """Blocking the loop would stall every task: the first call runs on its defaults."""
    BreakerPolicyFactory(name="async-first", failure_threshold=2)
    registry.clear()
    registry.background = True
    registry.get("warm-up")  # the background thread is running

    async def first_call():
        assert registry._may_wait() is False
        return registry.get("async-first").policy.failure_threshold

    assert asyncio.run(first_call()) == 5


@pytest.mark.parametrize("bad", [float("inf"), 1e9, 0, "1", True])
def test_a_bad_refresh_interval_falls_back_to_the_default(settings, bad):
    """``manage.py check`` reports it (E014); a running site refreshes every second anyway."""
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": bad}
    assert refresh_seconds() == 1.0
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": 0.5}
    assert refresh_seconds() == 0.5


@pytest.mark.django_db(transaction=True)
def test_an_infinite_refresh_interval_does_not_stop_the_background_thread(settings):
    """Event.wait(inf) raises OverflowError: the thread died, and no edit applied any more."""
    settings.RESILIENCE = {"POLICY_REFRESH_SECONDS": float("inf")}
    registry.clear()
    registry.background = True
    registry.get("warm-up")  # the background thread is running, on the bad value
    policy = BreakerPolicyFactory(name="edited-later", failure_threshold=2)
    BreakerPolicy.objects.filter(pk=policy.pk).update(failure_threshold=4, version=F("version") + 1)
    read = wait_until(lambda: registry.get("edited-later").policy.failure_threshold == 4, 10)
    assert read, "the background thread never read the row"
    assert registry._thread is not None and registry._thread.is_alive()


def test_missing_rows_of_1000_names_are_created_in_a_few_queries(settings, caplog):
    """Before: one get_or_create per name (2.1 s and thousands of queries per 1,000 names)."""
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "DEFAULT_POLICY": {"failure_threshold": 9},
        "POLICIES": {"many-0007": {"failure_threshold": 4}, "many-0008": {"failure_threshold": -1}},
    }
    names = [f"many-{i:04d}" for i in range(1000)]
    BreakerPolicyFactory(name="many-0009", failure_threshold=2)  # has a row: left alone
    registry.clear()
    for name in names:
        registry.get(name)
    registry._load_requested()  # reads many-0009; the other 999 have no row
    BreakerPolicyFactory(name="many-0010", failure_threshold=3)  # made meanwhile elsewhere
    with CaptureQueriesContext(connection) as queries:
        assert registry.refresh()
    inserts = [q for q in queries if q["sql"].startswith("INSERT")]
    # The load, the stamp, the versions, the new rows read back (chunks of 500); the rows
    # themselves in batches of 500 (PostgreSQL), or as many as 999 parameters allow (SQLite:
    # Django's limit, about 30 rows of this model per INSERT).
    fields = [f for f in BreakerPolicy._meta.concrete_fields if not f.primary_key]
    batch = min(500, connection.ops.bulk_batch_size(fields, names))
    assert len(inserts) == -(-999 // batch) and batch >= 30
    assert len(queries) - len(inserts) <= 8, [q["sql"][:60] for q in queries]
    assert BreakerPolicy.objects.filter(name__startswith="many-").count() == 1000
    thresholds = dict(BreakerPolicy.objects.values_list("name", "failure_threshold"))
    assert thresholds["many-0000"] == thresholds["many-0999"] == 9  # DEFAULT_POLICY
    assert thresholds["many-0007"] == 4  # POLICIES over DEFAULT_POLICY
    assert thresholds["many-0008"] == 5  # invalid: the built-in defaults, logged
    assert "invalid default policy values for 'many-0008'" in caplog.text
    assert (thresholds["many-0009"], thresholds["many-0010"]) == (2, 3)  # kept as they were
    assert registry.get("many-0010").policy.failure_threshold == 3  # read back at once
    assert registry.get("many-0500").policy.failure_threshold == 9
    assert registry.get("many-0500").pk is not None
