"""resilience.revisions: every saved change of a policy is a revision (save, update, the kill
switch), with actor, reason and diff; a revert is validated, audited and itself a revision."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from resilience import breaker, events
from resilience.models import BreakerPolicy, CircuitEvent, PolicyRevision
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _memory(memory_backend):
    yield
    events.flush(timeout=5)


def revisions(policy):
    return list(PolicyRevision.objects.filter(policy=policy).order_by("id"))


def test_create_then_save_records_each_change_with_its_diff():
    policy = BreakerPolicy.objects.create(name="pay", failure_threshold=5)
    policy.failure_threshold = 2
    policy.recovery_timeout = 30  # an int in a float field: stored as 30.0
    policy.save()
    policy.save()  # nothing changed: no revision
    created, edited = revisions(policy)
    assert (created.source, created.changes, created.actor) == ("code", {}, None)
    assert created.values["failure_threshold"] == 5
    assert edited.changes == {"failure_threshold": [5, 2], "recovery_timeout": [60.0, 30.0]}
    assert edited.version == BreakerPolicy.objects.get(pk=policy.pk).version - 1
    assert ("failure threshold", "5", "2") in edited.diff()
    assert "name" not in edited.values and "version" not in edited.values


def test_actor_reason_and_source_come_from_the_audit_block():
    alice = UserFactory(username="alice")
    policy = BreakerPolicyFactory(name="pay")
    with BreakerPolicy.audit(actor=alice, reason="provider asked", source="admin"):
        policy.failure_threshold = 9
        policy.save()
    latest = revisions(policy)[-1]
    assert (latest.actor, latest.reason, latest.source) == (alice, "provider asked", "admin")


def test_a_bulk_update_is_a_revision_per_row_that_changed():
    a, b = BreakerPolicyFactory(name="a"), BreakerPolicyFactory(name="b", failure_threshold=3)
    with BreakerPolicy.audit(reason="bulk"):
        BreakerPolicy.objects.filter(name__in=["a", "b"]).update(failure_threshold=3)
    assert [r.changes for r in revisions(a)][-1] == {"failure_threshold": [5, 3]}
    assert revisions(b)[-1].changes == {}  # b was already at 3: only its creation
    assert revisions(a)[-1].reason == "bulk"


def test_a_row_made_without_a_revision_keeps_its_first_values():
    BreakerPolicy.objects.bulk_create([BreakerPolicy(name="auto", failure_threshold=4)])
    policy = BreakerPolicy.objects.get(name="auto")
    policy.failure_threshold = 1
    policy.save()
    initial, edited = revisions(policy)
    assert initial.source == "initial" and initial.values["failure_threshold"] == 4
    assert edited.changes == {"failure_threshold": [4, 1]}


def test_the_window_sweep_and_untracked_fields_make_no_revision():
    policy = BreakerPolicyFactory(name="pay")
    BreakerPolicy.objects.filter(pk=policy.pk).update(window_mode="monitor")
    assert len(revisions(policy)) == 1


def test_force_open_and_release_from_code_are_revisions_with_the_actor():
    bob = UserFactory(username="bob")
    policy = BreakerPolicyFactory(name="pay")
    breaker("pay").force_open(actor=bob, reason="incident")
    breaker("pay").release(actor=bob, reason="fixed")
    forced, released = revisions(policy)[-2:]
    assert forced.changes == {"mode": ["enforced", "forced_open"]}
    assert (forced.actor, forced.reason, released.reason) == (bob, "incident", "fixed")


def test_an_expired_kill_switch_is_a_schedule_revision(clock):
    registry.clock = clock
    try:
        policy = BreakerPolicyFactory(name="pay")
        now = datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)
        breaker("pay").force_open(until=now + timedelta(minutes=5))
        clock.advance(301)
        assert BreakerPolicy.release_expired() == ["pay"]
    finally:
        registry.clock = None
    lifted = revisions(policy)[-1]
    assert lifted.source == "schedule" and lifted.actor is None
    assert lifted.changes["mode"] == ["forced_open", "enforced"]
    assert "kill switch expired" in lifted.reason


class TestRevert:
    def test_revert_restores_validates_audits_and_is_a_revision(self):
        carol = UserFactory(username="carol")
        policy = BreakerPolicyFactory(name="pay", failure_threshold=5)
        first = revisions(policy)[-1]
        policy.failure_threshold, policy.slow_call_ms = 2, 800
        policy.save()
        made = policy.revert_to(first, actor=carol, reason="too twitchy")
        policy.refresh_from_db()
        assert (policy.failure_threshold, policy.slow_call_ms) == (5, 0)
        assert registry.get("pay").policy.failure_threshold == 5  # in force here at once
        assert made.reverted_from == first and made.actor == carol
        assert made.changes == {"failure_threshold": [2, 5], "slow_call_ms": [800, 0]}
        event = CircuitEvent.objects.get(kind="policy_changed")
        assert event.actor == carol
        assert event.reason.startswith(f"Reverted to revision {first.pk} (version 1): ")
        assert "failure threshold: 2 → 5" in event.reason and "too twitchy" in event.reason

    def _refused(self, policy, revision, message):
        count, version = PolicyRevision.objects.count(), policy.version
        with pytest.raises(ValidationError, match=message):
            policy.revert_to(revision)
        assert PolicyRevision.objects.count() == count
        assert BreakerPolicy.objects.get(pk=policy.pk).version == version
        assert not CircuitEvent.objects.filter(kind="policy_changed").exists()

    def test_another_policys_revision_is_refused(self):
        pay, search = BreakerPolicyFactory(name="pay"), BreakerPolicyFactory(name="search")
        self._refused(pay, revisions(search)[0], "belongs to circuit search, not to pay")

    def test_a_missing_revision_is_refused(self):
        self._refused(BreakerPolicyFactory(name="pay"), 999_999, "There is no revision 999999")

    def test_a_revision_with_the_current_values_is_refused(self):
        policy = BreakerPolicyFactory(name="pay")
        self._refused(policy, revisions(policy)[0], "already has the values")

    def test_values_that_no_longer_validate_are_refused(self):
        policy = BreakerPolicyFactory(name="pay")
        old = revisions(policy)[0]
        # As if written before an upgrade: an exception class that no longer imports.
        PolicyRevision.objects.filter(pk=old.pk).update(
            values={**old.values, "ignore_exceptions": "gone.module.Error"}
        )
        policy.failure_threshold = 3
        policy.save()
        policy.refresh_from_db()
        self._refused(policy, old.pk, "gone.module.Error")

    def test_a_kill_switch_that_has_ended_is_not_brought_back(self, clock):
        registry.clock = clock
        try:
            policy = BreakerPolicyFactory(name="pay")
            now = datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)
            breaker("pay").force_open(until=now + timedelta(minutes=5))
            forced = revisions(policy)[-1]
            breaker("pay").release()
            clock.advance(600)
            policy.refresh_from_db()
            self._refused(policy, forced, "kill switch of this revision ended")
        finally:
            registry.clock = None

    def test_a_deleted_policys_revisions_stay(self):
        policy = BreakerPolicyFactory(name="pay")
        policy.delete()
        kept = PolicyRevision.objects.get(circuit="pay")
        assert kept.policy is None

    def test_revisions_are_append_only(self):
        revision = revisions(BreakerPolicyFactory(name="pay"))[0]
        revision.reason = "rewritten"
        with pytest.raises(ValueError, match="append-only"):
            revision.save()
