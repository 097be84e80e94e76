"""BreakerPolicy / CircuitEvent validation and database constraints."""

import math

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from resilience.models import BOUNDS, BreakerPolicy, CircuitEvent
from tests.factories import BreakerPolicyFactory, CircuitEventFactory

pytestmark = pytest.mark.django_db


def test_defaults_match_design():
    policy = BreakerPolicy(name="payments-api")
    policy.full_clean()
    assert policy.mode == "enforced"
    assert policy.failure_threshold == 5
    assert policy.window_seconds == 60
    assert policy.minimum_calls == 10
    assert policy.recovery_timeout == 60
    assert policy.backoff_multiplier == 1.0
    assert policy.half_open_max_calls == 1
    assert policy.success_threshold == 1
    assert policy.retry_attempts == 0
    assert policy.alert_on_open is True
    assert policy.alert_on_recovery is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", -1),
        ("failure_threshold", 10**9),
        ("failure_rate_threshold", 101),
        ("window_seconds", 0),
        ("minimum_calls", 0),
        ("slow_call_ms", 10**10),
        ("recovery_timeout", 0),
        ("recovery_timeout", -5),
        ("recovery_timeout", math.nan),
        ("recovery_timeout", math.inf),
        ("recovery_timeout", "soon"),
        ("backoff_multiplier", 0.5),
        ("backoff_multiplier", math.nan),
        ("half_open_max_calls", 0),
        ("success_threshold", 0),
        ("retry_attempts", 11),
        ("alert_cooldown_seconds", -1),
        ("mode", "sometimes"),
    ],
)
def test_bad_values_are_clear_form_errors(field, value):
    policy = BreakerPolicy(name="bad", **{field: value})
    with pytest.raises(ValidationError) as info:
        policy.full_clean()
    assert field in info.value.message_dict


@pytest.mark.parametrize(
    "name",
    ["", "a" * 101, "has space", "new\nline", "{tag}", "star*", "nul\x00", "\u202eevil", "😀"],
)
def test_hostile_circuit_names_rejected(name):
    with pytest.raises(ValidationError) as info:
        BreakerPolicy(name=name).full_clean()
    assert "name" in info.value.message_dict


@pytest.mark.parametrize("name", ["payments-api", "http:api.example.com:443", "llm_v2.chat"])
def test_good_circuit_names(name):
    BreakerPolicy(name=name).full_clean()


def test_cross_field_rules():
    policy = BreakerPolicy(name="x", recovery_timeout=120, max_recovery_timeout=60)
    with pytest.raises(ValidationError) as info:
        policy.full_clean()
    assert "max_recovery_timeout" in info.value.message_dict

    policy = BreakerPolicy(name="x", retry_backoff_ms=500, retry_max_backoff_ms=100)
    with pytest.raises(ValidationError) as info:
        policy.full_clean()
    assert "retry_max_backoff_ms" in info.value.message_dict

    policy = BreakerPolicy(name="x", failure_threshold=0, failure_rate_threshold=0)
    with pytest.raises(ValidationError) as info:
        policy.full_clean()
    assert "failure_threshold" in info.value.message_dict
    BreakerPolicy(
        name="x", failure_threshold=0, failure_rate_threshold=0, mode="disabled"
    ).full_clean()


def test_exception_paths_validated():
    ok = BreakerPolicy(name="x", ignore_exceptions="builtins.ValueError\nbuiltins.KeyError")
    ok.full_clean()
    assert ok.ignored == ["builtins.ValueError", "builtins.KeyError"]
    for bad in ["not a path", "os.path.join", "no.such.module.Error", "ValueError"]:
        with pytest.raises(ValidationError) as info:
            BreakerPolicy(name="x", record_exceptions=bad).full_clean()
        assert "record_exceptions" in info.value.message_dict


def test_recipients_validated():
    ok = BreakerPolicy(name="x", alert_recipients="a@example.com\nb@example.com")
    ok.full_clean()
    assert ok.recipients == ["a@example.com", "b@example.com"]
    for bad in ["not-an-email", "a@example.com\r\nBcc: evil@example.com", "x" * 300 + "@a.io"]:
        with pytest.raises(ValidationError) as info:
            BreakerPolicy(name="x", alert_recipients=bad).full_clean()
        assert "alert_recipients" in info.value.message_dict


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (field, high + 1)
        for field, (low, high) in BOUNDS.items()
        if field != "alert_cooldown_seconds"
    ]
    + [("mode", "bogus")],
)
def test_database_constraints_reject_bypassing_validation(field, value):
    policy = BreakerPolicyFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        BreakerPolicy.objects.filter(pk=policy.pk).update(**{field: value})


def test_database_rejects_max_recovery_below_recovery():
    policy = BreakerPolicyFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        BreakerPolicy.objects.filter(pk=policy.pk).update(
            recovery_timeout=100, max_recovery_timeout=1
        )


def test_for_circuit_is_the_saved_row_else_the_settings_defaults(settings):
    settings.RESILIENCE = {
        "DEFAULT_POLICY": {"failure_threshold": 7},
        "POLICIES": {"search": {"failure_threshold": 2}, "broken": {"no_such_field": 1}},
    }
    saved = BreakerPolicyFactory(name="pay", failure_threshold=9)
    assert BreakerPolicy.for_circuit("pay") == saved
    fresh = BreakerPolicy.for_circuit("search")
    assert (fresh.pk, fresh.name, fresh.failure_threshold) == (None, "search", 2)
    assert BreakerPolicy.for_circuit("other").failure_threshold == 7
    assert BreakerPolicy.for_circuit("broken").failure_threshold == 5  # built-in: invalid values
    assert not BreakerPolicy.objects.exclude(name="pay").exists()  # nothing saved


def test_save_bumps_version():
    policy = BreakerPolicyFactory()
    assert policy.version == 1
    policy.failure_threshold = 3
    policy.save(update_fields=["failure_threshold"])
    policy.refresh_from_db()
    assert policy.version == 2


def test_events_are_append_only():
    event = CircuitEventFactory()
    event.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    event.refresh_from_db()
    event.alert_status = "sent"
    event.save(update_fields=["alert_status"])
    assert CircuitEvent.objects.get(pk=event.pk).alert_status == "sent"


def test_transition_id_is_unique():
    CircuitEventFactory(transition_id="abc:1")
    with pytest.raises(IntegrityError), transaction.atomic():
        CircuitEventFactory(transition_id="abc:1")
