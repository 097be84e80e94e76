"""Policy revisions under concurrent saves on a real database with row locks (PostgreSQL):
every revision's values are the row as it was stored, whatever commits in between."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from resilience import events
from resilience.models import BreakerPolicy, PolicyRevision
from resilience.revisions import tracked_fields
from tests.factories import BreakerPolicyFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _row_locks(memory_backend):
    if not connection.features.has_select_for_update:
        pytest.skip("needs a database with row locks (DATABASE_URL=postgres://...)")
    yield
    events.flush(timeout=5)


def _waiting_for_a_lock(timeout: float = 10.0) -> bool:
    """True once another session of this database waits for a lock (bounded)."""
    with connection.cursor() as cursor:

        def waiting() -> bool:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(cursor.fetchone()[0])

        return wait_until(waiting, timeout, 0.02)


def _in_thread(target, *args):
    errors: list[BaseException] = []

    def run():
        try:
            target(*args)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _force_during_an_edit(policy) -> None:
    """An edit of the threshold saves, and before it commits the mode alone is saved from
    another connection (as ``Breaker.force_open`` does), which must wait for the edit."""
    edit_saved, release_edit = threading.Event(), threading.Event()

    def edit():
        with transaction.atomic():
            row = BreakerPolicy.objects.get(pk=policy.pk)
            row.failure_threshold = 2
            row.save()
            edit_saved.set()
            assert release_edit.wait(15)

    def force():
        row = BreakerPolicy.objects.get(pk=policy.pk)
        row.mode = "forced_open"
        row.save(update_fields=["mode"])

    editing, edit_errors = _in_thread(edit)
    assert edit_saved.wait(15)
    forcing, force_errors = _in_thread(force)
    blocked = _waiting_for_a_lock()
    release_edit.set()
    editing.join(15)
    forcing.join(15)
    assert blocked and not edit_errors and not force_errors, (edit_errors, force_errors)


def test_a_save_racing_another_records_the_row_it_wrote():
    """Before: ``before_save`` read the row without a lock. A kill switch pulled (only the mode
    saved) while an edit of the threshold was uncommitted read the old threshold, waited on the
    row, wrote only the mode - and recorded a revision whose values held the old threshold, so
    a revert to it later quietly undid the edit."""
    policy = BreakerPolicyFactory(name="pay", failure_threshold=5)
    _force_during_an_edit(policy)

    stored = BreakerPolicy.objects.get(pk=policy.pk)
    assert (stored.failure_threshold, stored.mode) == (2, "forced_open")
    last = PolicyRevision.objects.filter(policy=policy).order_by("-id").first()
    assert last.changes == {"mode": ["enforced", "forced_open"]}
    assert last.restored() == {f.name: getattr(stored, f.attname) for f in tracked_fields()}
    assert last.version == stored.version


def test_two_racing_saves_each_bump_the_version():
    """Before: ``save()`` wrote the version it had loaded plus one, so the second of two racing
    saves wrote the same version as the first. Every process's policy refresh looks for changed
    versions (the sum of versions, then each row's): one that refreshed between the two commits
    never saw the second (here, the kill switch), and two revisions claimed one version."""
    policy = BreakerPolicyFactory(name="pay", failure_threshold=5)
    _force_during_an_edit(policy)

    assert BreakerPolicy.objects.get(pk=policy.pk).version == policy.version + 2
    revisions = PolicyRevision.objects.filter(policy=policy).order_by("id")
    versions = list(revisions.values_list("version", flat=True))
    assert versions == [policy.version, policy.version + 1, policy.version + 2]
