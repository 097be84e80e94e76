"""Bad input gets a clear error and loses nothing: policy values, settings, circuit names."""

from __future__ import annotations

import math

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import DataError, IntegrityError, transaction
from django.test import Client

from resilience import CircuitOpenError, breaker, circuit_breaker, events
from resilience.models import BOUNDS, BreakerPolicy, CircuitEvent
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.security.admin_forms import form_data

pytestmark = pytest.mark.django_db

FLOAT_FIELDS = {"recovery_timeout", "backoff_multiplier", "max_recovery_timeout"}


def bad_values(field: str) -> list:
    low, high = BOUNDS[field]
    values = [low - 1, -1, high * 10, 2**63, "abc", "", None, [], {"a": 1}, True]
    if field in FLOAT_FIELDS:
        values += [math.nan, -math.inf, "nan", "1e999", low / 2]
    else:
        values += [math.nan, "5 OR 1=1", low + 0.5]  # a fraction is not silently truncated
    return values


# Crashes instead of a ValidationError: see test_full_clean_never_crashes.
CRASHING = [
    ("failure_threshold", math.inf),
    ("recovery_timeout", 10**400),
    ("alert_cooldown_seconds", ""),
    ("alert_cooldown_seconds", []),
    ("max_concurrent_calls", math.inf),
    ("call_timeout_ms", -math.inf),
    ("call_timeout_ms", 10**400),
]
CASES = [
    (field, value)
    for field in BOUNDS
    for value in bad_values(field)
    if (field, value) not in CRASHING
]


@pytest.mark.parametrize(("field", "value"), CASES, ids=[f"{f}={v!r}" for f, v in CASES])
def test_full_clean_names_the_field(field, value):
    policy = BreakerPolicy(name="checked", **{field: value})
    if value is None and field == "alert_cooldown_seconds":
        policy.full_clean()  # None means "the ALERTS default" there
        return
    with pytest.raises(ValidationError) as info:
        policy.full_clean()
    assert field in info.value.message_dict, info.value.message_dict
    assert all(message.strip() for message in info.value.message_dict[field])


@pytest.mark.parametrize(("field", "value"), CRASHING)
def test_full_clean_never_crashes(field, value):
    with pytest.raises(ValidationError) as info:
        BreakerPolicy(name="checked", **{field: value}).full_clean()
    assert field in info.value.message_dict


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "bogus"),
        ("alert_recipients", "ops@example.com\r\nBcc: victim@example.com"),
        ("alert_recipients", "<script>@example.com"),
        ("ignore_exceptions", "os.system"),
        ("ignore_exceptions", "builtins.ValueError; rm -rf /"),
        ("record_exceptions", "no.such.Module"),
    ],
)
def test_full_clean_rejects_text_fields(field, value):
    with pytest.raises(ValidationError) as info:
        BreakerPolicy(name="checked", **{field: value}).full_clean()
    assert field in info.value.message_dict


def test_cross_field_rules_are_clear():
    policy = BreakerPolicy(
        name="checked", recovery_timeout=60, max_recovery_timeout=10, failure_threshold=0
    )
    with pytest.raises(ValidationError) as info:
        policy.full_clean()
    assert {"max_recovery_timeout", "failure_threshold"} <= set(info.value.message_dict)


UPDATE_CASES = [
    ("failure_threshold", -1),
    ("failure_threshold", 2**63),
    ("failure_rate_threshold", 101),
    ("window_seconds", 0),
    ("minimum_calls", 0),
    ("half_open_max_calls", 0),
    ("success_threshold", 10**6),
    ("recovery_timeout", math.nan),
    ("recovery_timeout", math.inf),
    ("recovery_timeout", -5.0),
    ("backoff_multiplier", 0.5),
    ("max_recovery_timeout", 0.0),
    ("retry_attempts", 11),
    ("retry_backoff_ms", -1),
    ("mode", "bogus"),
    ("failure_threshold", "abc"),
    ("recovery_timeout", "soon"),
    ("max_concurrent_calls", -1),
    ("max_concurrent_calls", 100_001),
    ("max_concurrent_calls", 2**63),
    ("max_concurrent_calls", "two"),
    ("call_timeout_ms", -1),
    ("call_timeout_ms", 3_600_001),
    ("call_timeout_ms", math.nan),
    ("call_timeout_ms", "2s"),
]


@pytest.mark.django_db(transaction=True)  # the trip's event is stored by a background thread
@pytest.mark.parametrize(("field", "value"), UPDATE_CASES)
def test_raw_update_is_refused_and_loses_nothing(field, value, memory_backend):
    BreakerPolicyFactory(name="guarded", failure_threshold=2, recovery_timeout=60)
    guarded = circuit_breaker("guarded")(lambda: 1 / 0)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            guarded()
    assert breaker("guarded").state == "open"
    # The opening's event is written first: on Django 4.2's SQLite (no IMMEDIATE transactions)
    # the update's read-then-write would otherwise meet the writer thread's lock.
    assert events.flush()
    before = BreakerPolicy.objects.values().get(name="guarded")

    with pytest.raises((IntegrityError, DataError, ValueError, TypeError, OverflowError)):
        with transaction.atomic():
            BreakerPolicy.objects.filter(name="guarded").update(**{field: value})

    assert BreakerPolicy.objects.values().get(name="guarded") == before
    registry.clear()  # reload from the database: the row still holds the good values
    registry.refresh()
    assert registry.get("guarded").policy.failure_threshold == 2
    with pytest.raises(CircuitOpenError):  # and the live state was not lost either
        guarded()
    assert events.flush()
    assert CircuitEvent.objects.filter(circuit="guarded", kind="opened").count() == 1


# --- RESILIENCE settings: errors at `manage.py check`, not at the first call ---------------------

REDIS = "resilience.backends.redis.RedisBackend"
BAD_SETTINGS = {
    "not-a-dict": "redis://127.0.0.1:6379/0",
    "unknown-key": {"BACKNED": REDIS},
    "backend-missing": {"BACKEND": "no.such.Backend"},
    "options-not-a-dict": {"OPTIONS": "redis://x"},
    "on-error": {"ON_BACKEND_ERROR": "explode"},
    "refresh-negative": {"POLICY_REFRESH_SECONDS": -1},
    "refresh-nan": {"POLICY_REFRESH_SECONDS": math.nan},
    "refresh-string": {"POLICY_REFRESH_SECONDS": "1"},
    "enabled-string": {"ENABLED": "yes"},
    "default-policy-negative": {"DEFAULT_POLICY": {"failure_threshold": -1}},
    "default-policy-nan": {"DEFAULT_POLICY": {"recovery_timeout": math.nan}},
    "default-policy-unknown": {"DEFAULT_POLICY": {"treshold": 3}},
    "policies-bad-name": {"POLICIES": {"pay{ments}": {}}},
    "policies-bad-values": {"POLICIES": {"payments": {"half_open_max_calls": 0}}},
    "default-cap-negative": {"DEFAULT_POLICY": {"max_concurrent_calls": -1}},
    "default-cap-nan": {"DEFAULT_POLICY": {"max_concurrent_calls": math.nan}},
    "default-cap-inf": {"DEFAULT_POLICY": {"max_concurrent_calls": math.inf}},
    "default-cap-huge": {"DEFAULT_POLICY": {"max_concurrent_calls": 10**9}},
    "default-cap-string": {"DEFAULT_POLICY": {"max_concurrent_calls": "two"}},
    "default-cap-fraction": {"DEFAULT_POLICY": {"max_concurrent_calls": 2.5}},
    "default-cap-bool": {"DEFAULT_POLICY": {"max_concurrent_calls": True}},
    "default-timeout-negative": {"DEFAULT_POLICY": {"call_timeout_ms": -500}},
    "default-timeout-nan": {"DEFAULT_POLICY": {"call_timeout_ms": math.nan}},
    "default-timeout-huge": {"DEFAULT_POLICY": {"call_timeout_ms": 10**400}},
    "default-timeout-list": {"DEFAULT_POLICY": {"call_timeout_ms": [2000]}},
    "policies-cap-negative": {"POLICIES": {"payments": {"max_concurrent_calls": -2}}},
    "policies-timeout-seconds": {"POLICIES": {"payments": {"call_timeout_ms": "2s"}}},
    "policies-timeout-inf": {"POLICIES": {"payments": {"call_timeout_ms": math.inf}}},
    "alerts-delivery": {"ALERTS": {"DELIVERY": "pigeon"}},
    "alerts-recipients": {"ALERTS": {"RECIPIENTS": "ops@example.com"}},
    "alerts-cooldown": {"ALERTS": {"COOLDOWN_SECONDS": -5}},
    "health-status": {"HEALTH": {"CRITICAL_STATUS": 99}},
    "health-token": {"HEALTH": {"TOKEN": "short"}},
    # Passed the check before issue 12:
    "health-token-whitespace": {"HEALTH": {"TOKEN": " " * 32}},
    "alerts-recipient-not-an-address": {"ALERTS": {"RECIPIENTS": ["oncall"]}},
    "alerts-from-not-an-address": {"ALERTS": {"FROM_EMAIL": "resilience"}},
    "refresh-huge": {"POLICY_REFRESH_SECONDS": 1e300},
    "redact-bad-pattern": {"REDACT": {"PATTERNS": ["(unclosed"]}},
}


@pytest.mark.parametrize("value", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_invalid_settings_fail_the_system_check(settings, value):
    settings.RESILIENCE = value
    with pytest.raises(SystemCheckError, match=r"resilience\.E0\d\d"):
        call_command("check")


BAD_OPTIONS = {
    "backend-not-a-backend": {"BACKEND": "collections.OrderedDict"},
    "negative-timeout": {"socket_timeout": -1},
    "prefix-hash-tag": {"prefix": "a{b"},
    "unknown-option": {"no_such_option": 1},
    # Passed the check before issue 12:
    "socket-timeout-nan": {"socket_timeout": math.nan},
    "socket-timeout-huge": {"socket_timeout": 1e9},
    "log-interval-nan": {"log_interval": math.nan},
    "defer-successes-string": {"defer_successes": "no"},
    "prefix-newline": {"prefix": "app\nx"},
    "prefix-glob": {"prefix": "app*"},
}


@pytest.mark.parametrize("options", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_invalid_backend_options_fail_the_system_check(settings, options):
    options = {"url": "redis://127.0.0.1:1/0", **options}
    settings.RESILIENCE = {"BACKEND": options.pop("BACKEND", REDIS), "OPTIONS": options}
    with pytest.raises(SystemCheckError, match=r"resilience\.E0\d\d"):
        call_command("check")


@pytest.mark.parametrize(
    "options",
    [
        {"socket_timeout": math.nan},
        {"socket_timeout": 1e9},
        {"log_interval": math.nan},
        {"defer_successes": "no"},
        {"prefix": "app\nx"},
    ],
)
def test_the_redis_backend_refuses_bad_options_when_built(options):
    from django.core.exceptions import ImproperlyConfigured

    from resilience.backends.redis import RedisBackend

    with pytest.raises(ImproperlyConfigured, match=next(iter(options))):
        RedisBackend(url="redis://127.0.0.1:1/0", **options)


@pytest.mark.parametrize(
    "values",
    [
        {"failure_threshold": "x"},
        {"failure_threshold": math.inf},  # OverflowError in int(): it crashed the call
        {"max_concurrent_calls": math.inf},
        {"max_concurrent_calls": -1},  # would have counted slots under a cap of -1
        {"max_concurrent_calls": 2.5},
        {"call_timeout_ms": -500},
        {"call_timeout_ms": math.nan},
    ],
)
def test_a_bad_default_policy_never_breaks_a_call(settings, memory_backend, values, caplog):
    # Whatever slipped past the check, protected calls run on the built-in defaults.
    settings.RESILIENCE = {**settings.RESILIENCE, "DEFAULT_POLICY": values}
    assert circuit_breaker("defaulted")(lambda: "ran")() == "ran"
    snapshot = breaker("defaulted").snapshot()
    assert (snapshot["max_concurrent_calls"], snapshot["in_flight"]) == (0, None)
    assert "invalid default policy values for 'defaulted'" in caplog.text
    registry.refresh()  # what the background thread does: the row is created, built-in values
    assert BreakerPolicy.objects.values("failure_threshold", "max_concurrent_calls").get(
        name="defaulted"
    ) == {"failure_threshold": 5, "max_concurrent_calls": 0}


def test_valid_default_isolation_values_are_used(settings, memory_backend):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "DEFAULT_POLICY": {"max_concurrent_calls": 3},
        "POLICIES": {"payments": {"call_timeout_ms": 2000}},
    }
    assert breaker("defaulted").snapshot()["max_concurrent_calls"] == 3
    assert registry.get("payments").policy.call_timeout_ms == 2000
    assert registry.get("payments").policy.max_concurrent_calls == 3


# --- circuit names -------------------------------------------------------------------------------

BAD_NAMES = {
    "10kb": "a" * 10_240,
    "101-chars": "a" * 101,
    "empty": "",
    "newline": "pay\nments",
    "crlf-header": "pay\r\nX-Injected: 1",
    "hash-tag": "pay{ments}",
    "open-brace": "{payments",
    "glob": "pay*",
    "nul": "pay\x00ments",
    "rtl-override": "\u202epayments",
    "rtl-mark": "payments\u200f",
    "emoji": "💳payments",
    "space": "pay ments",
    "slash": "pay/ments",
    "leading-dot": ".payments",
    "not-a-string": 42,
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_bad_circuit_names_are_rejected_clearly(name):
    for factory in (circuit_breaker, breaker):
        with pytest.raises(ValueError, match="invalid circuit name") as info:
            factory(name)
        assert len(str(info.value)) < 400  # bounded, even for a 10 KB name
    if isinstance(name, str):
        with pytest.raises(ValidationError) as info:
            BreakerPolicy(name=name).full_clean()
        assert "name" in info.value.message_dict
    assert not BreakerPolicy.objects.exists()


@pytest.mark.parametrize("name", ["payments\n", "a\n"])
def test_trailing_newline_is_rejected(name):
    with pytest.raises(ValueError, match="invalid circuit name"):
        circuit_breaker(name)
    with pytest.raises(ValidationError):
        BreakerPolicy(name=name).full_clean()


def test_only_valid_names_reach_redis(settings, redis_proc, admin_redis):
    settings.RESILIENCE = {
        "BACKEND": REDIS,
        "OPTIONS": {"url": redis_proc.url, "prefix": "names"},
    }
    good = ["payments-api", "http:api.example.com:8443", "a.b_c:d-e", "X" * 100]
    for name in good:
        assert circuit_breaker(name)(lambda: "ok")() == "ok"
    for name in BAD_NAMES.values():
        with pytest.raises(ValueError):
            circuit_breaker(name)
    from resilience.backends import get_backend

    get_backend().close()  # deferred successes are written now
    keys = set(admin_redis.keys("*"))
    circuits = {key.split("{", 1)[1].split("}", 1)[0] for key in keys}
    assert circuits == set(good)  # no key for a refused name
    assert {k for k in keys if k.endswith(":state")} == {f"names:v1:{{{n}}}:state" for n in good}
    for key in keys:  # one hash tag per key, exactly the circuit's name
        assert key.count("{") == key.count("}") == 1


# --- the admin form and the command line ---------------------------------------------------------

ADMIN_CASES = [
    ("failure_threshold", "-1"),
    ("failure_threshold", "1e9"),
    ("failure_threshold", "abc"),
    ("failure_threshold", "inf"),
    ("recovery_timeout", "nan"),
    ("recovery_timeout", "inf"),
    ("recovery_timeout", "1e999"),
    ("recovery_timeout", "0"),
    ("max_recovery_timeout", "-3"),
    ("window_seconds", "99999999999999999999"),
    ("half_open_max_calls", "0"),
    ("failure_rate_threshold", "101"),
    ("backoff_multiplier", "0.5"),
    ("alert_cooldown_seconds", "-1"),
    ("mode", "bogus"),
    ("alert_recipients", "ops@example.com\r\nBcc: victim@example.com"),
    ("ignore_exceptions", "os.system"),
    ("max_concurrent_calls", "-1"),
    ("max_concurrent_calls", "nan"),
    ("max_concurrent_calls", "inf"),
    ("max_concurrent_calls", "100001"),
    ("max_concurrent_calls", "99999999999999999999"),
    ("max_concurrent_calls", "2.5"),
    ("max_concurrent_calls", "two"),
    ("call_timeout_ms", "-1"),
    ("call_timeout_ms", "nan"),
    ("call_timeout_ms", "1e999"),
    ("call_timeout_ms", "3600001"),
    ("call_timeout_ms", "2s"),
]


@pytest.mark.parametrize(("field", "value"), ADMIN_CASES)
def test_admin_form_shows_a_field_error_and_saves_nothing(field, value, memory_backend):
    policy = BreakerPolicyFactory(name="edited")
    before = BreakerPolicy.objects.values().get(pk=policy.pk)
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = f"/admin/resilience/breakerpolicy/{policy.pk}/change/"
    response = client.post(url, form_data(policy, **{field: value}))
    assert response.status_code == 200  # the form again, not a crash and not a redirect
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert BreakerPolicy.objects.values().get(pk=policy.pk) == before


@pytest.mark.parametrize("name", [BAD_NAMES["10kb"], BAD_NAMES["crlf-header"], "pay{ments}"])
def test_command_line_rejects_bad_names_clearly(name):
    with pytest.raises(CommandError) as info:
        call_command("resilience", "reset", name)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
