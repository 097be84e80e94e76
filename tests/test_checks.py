"""System checks on the RESILIENCE setting, through run_checks()."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery, _state
from django.core.checks import run_checks
from django.test import override_settings

from resilience.conf import settings as conf

ROOT = Path(__file__).resolve().parent.parent


def ids(**resilience):
    with override_settings(RESILIENCE=resilience):
        return sorted({m.id for m in run_checks() if m.id and m.id.startswith("resilience.")})


ONCALL = {"RECIPIENTS": ["oncall@example.com"]}


def test_valid_settings_have_no_errors():
    memory = "resilience.backends.memory.MemoryBackend"
    assert ids(BACKEND=memory, ALERTS=ONCALL) == ["resilience.W001"]
    with override_settings(DEBUG=True):
        assert ids(ALERTS=ONCALL) == []


REDIS = "resilience.backends.redis.RedisBackend"
NAN, INF = float("nan"), float("inf")


def redis(**options):
    return {"BACKEND": REDIS, "OPTIONS": {"url": "redis://127.0.0.1:1/0", **options}}


# (settings, the one error id expected, the key its message names). Every key and option of
# RESILIENCE has rows here (test_the_table_covers_every_key_and_option keeps it so).
EMAIL = "resilience.channels.EmailChannel"
HOOK = "resilience.channels.WebhookChannel"
SLACK = "resilience.channels.SlackChannel"


def channel(backend, OPTION=None, **options):
    entry = {"BACKEND": backend, "OPTIONS": options}
    if OPTION is not None:
        entry["OPTION"] = OPTION
    return {"ALERTS": {"CHANNELS": [entry]}}


CASES = {
    "RESILIENCE-not-a-dict": (["nope"], "E001", "RESILIENCE"),
    "RESILIENCE-unknown": ({"BAKEND": "x"}, "E008", "BAKEND"),
    "BACKEND-missing": ({"BACKEND": "no.such.Backend"}, "E002", "BACKEND"),
    "BACKEND-not-a-backend": ({"BACKEND": "collections.OrderedDict"}, "E002", "BACKEND"),
    "BACKEND-not-a-string": ({"BACKEND": 42}, "E002", "BACKEND"),
    "OPTIONS-not-a-dict": ({"OPTIONS": "redis://x"}, "E010", "OPTIONS"),
    "ENABLED-string": ({"ENABLED": "yes"}, "E011", "ENABLED"),
    "ENABLED-int": ({"ENABLED": 1}, "E011", "ENABLED"),
    "CREATE_MISSING_POLICIES-string": ({"CREATE_MISSING_POLICIES": "no"}, "E012", "CREATE_MIS"),
    "EXPOSE_CIRCUIT_NAME-none": ({"EXPOSE_CIRCUIT_NAME": None}, "E013", "EXPOSE_CIRCUIT_NAME"),
    "DEFAULT_POLICY-not-a-dict": ({"DEFAULT_POLICY": [1]}, "E004", "DEFAULT_POLICY"),
    "DEFAULT_POLICY-negative": (
        {"DEFAULT_POLICY": {"failure_threshold": -3}},
        "E005",
        "failure_threshold",
    ),
    "DEFAULT_POLICY-nan": ({"DEFAULT_POLICY": {"recovery_timeout": NAN}}, "E005", "recovery"),
    "DEFAULT_POLICY-unknown-field": ({"DEFAULT_POLICY": {"thresold": 3}}, "E007", "thresold"),
    "POLICIES-not-a-dict": ({"POLICIES": ["payments"]}, "E004", "POLICIES"),
    "POLICIES-entry-not-a-dict": ({"POLICIES": {"x": "not a dict"}}, "E004", "POLICIES['x']"),
    "POLICIES-bad-name": ({"POLICIES": {"bad name!": {}}}, "E006", "POLICIES"),
    "POLICIES-bad-values": (
        {"POLICIES": {"payments-api": {"half_open_max_calls": 0}}},
        "E005",
        "half_open_max_calls",
    ),
    "POLICY_REFRESH_SECONDS-zero": ({"POLICY_REFRESH_SECONDS": 0}, "E014", "POLICY_REFRESH"),
    "POLICY_REFRESH_SECONDS-string": ({"POLICY_REFRESH_SECONDS": "1"}, "E014", "POLICY_REFRESH"),
    "POLICY_REFRESH_SECONDS-nan": ({"POLICY_REFRESH_SECONDS": NAN}, "E014", "POLICY_REFRESH"),
    "POLICY_REFRESH_SECONDS-inf": ({"POLICY_REFRESH_SECONDS": INF}, "E014", "POLICY_REFRESH"),
    "POLICY_REFRESH_SECONDS-huge": ({"POLICY_REFRESH_SECONDS": 1e9}, "E014", "POLICY_REFRESH"),
    "POLICY_REFRESH_SECONDS-bool": ({"POLICY_REFRESH_SECONDS": True}, "E014", "POLICY_REFRESH"),
    "IDLE_CIRCUIT_SECONDS-negative": ({"IDLE_CIRCUIT_SECONDS": -1}, "E019", "IDLE_CIRCUIT"),
    "IDLE_CIRCUIT_SECONDS-string": ({"IDLE_CIRCUIT_SECONDS": "1h"}, "E019", "IDLE_CIRCUIT"),
    "IDLE_CIRCUIT_SECONDS-huge": ({"IDLE_CIRCUIT_SECONDS": 1e12}, "E019", "IDLE_CIRCUIT"),
    "ON_BACKEND_ERROR-bad": ({"ON_BACKEND_ERROR": "explode"}, "E015", "ON_BACKEND_ERROR"),
    "ON_BACKEND_ERROR-unhashable": ({"ON_BACKEND_ERROR": ["local"]}, "E015", "ON_BACKEND_ERROR"),
    "ALERTS-not-a-dict": ({"ALERTS": ["ops@example.com"]}, "E016", "ALERTS"),
    "ALERTS-unknown": ({"ALERTS": {"RECIPIENT": []}}, "E009", "RECIPIENT"),
    "ALERTS-RECIPIENTS-string": (
        {"ALERTS": {"RECIPIENTS": "oncall@example.com"}},
        "E020",
        "RECIPIENTS",
    ),
    "ALERTS-RECIPIENTS-not-an-address": (
        {"ALERTS": {"RECIPIENTS": ["ops@example.com", "oncall"]}},
        "E021",
        "RECIPIENTS",
    ),
    "ALERTS-RECIPIENTS-header-injection": (
        {"ALERTS": {"RECIPIENTS": ["ops@example.com\r\nBcc: x@evil.example"]}},
        "E021",
        "RECIPIENTS",
    ),
    "ALERTS-FROM_EMAIL": ({"ALERTS": {"FROM_EMAIL": "resilience"}}, "E022", "FROM_EMAIL"),
    "ALERTS-FROM_EMAIL-type": ({"ALERTS": {"FROM_EMAIL": 7}}, "E022", "FROM_EMAIL"),
    "ALERTS-COOLDOWN_SECONDS-negative": ({"ALERTS": {"COOLDOWN_SECONDS": -1}}, "E023", "COOL"),
    "ALERTS-COOLDOWN_SECONDS-float": ({"ALERTS": {"COOLDOWN_SECONDS": 1.5}}, "E023", "COOL"),
    "ALERTS-COOLDOWN_SECONDS-huge": ({"ALERTS": {"COOLDOWN_SECONDS": 10**12}}, "E023", "COOL"),
    "ALERTS-DELIVERY": ({"ALERTS": {"DELIVERY": "pigeon"}}, "E024", "DELIVERY"),
    "ALERTS-SITE_URL": ({"ALERTS": {"SITE_URL": "www.example.com"}}, "E025", "SITE_URL"),
    "ALERTS-SITE_URL-scheme": ({"ALERTS": {"SITE_URL": "ftp://example.com"}}, "E025", "SITE_URL"),
    "ALERTS-CHANNELS-not-a-list": ({"ALERTS": {"CHANNELS": {"BACKEND": EMAIL}}}, "E070", "CHAN"),
    "ALERTS-CHANNELS-entry": ({"ALERTS": {"CHANNELS": [EMAIL]}}, "E070", "CHANNELS"),
    "ALERTS-CHANNELS-keys": (channel(EMAIL, OPTION={}), "E071", "OPTION"),
    "ALERTS-CHANNELS-unknown-backend": (channel("myapp.PagerChannel"), "E072", "BACKEND"),
    "ALERTS-CHANNELS-not-a-channel": (channel("resilience.alerts.cooldown"), "E072", "BACKEND"),
    "ALERTS-CHANNELS-webhook-ftp": (channel(HOOK, url="ftp://hooks.example/x"), "E073", "url"),
    "ALERTS-CHANNELS-webhook-relative": (channel(HOOK, url="/hooks"), "E073", "url"),
    "ALERTS-CHANNELS-webhook-missing": (channel(HOOK), "E073", "url"),
    "ALERTS-CHANNELS-slack-url": (channel(SLACK, webhook_url="javascript:x"), "E073", "webhook"),
    "ALERTS-CHANNELS-secret": (channel(HOOK, url="https://h.example", secret=""), "E074", "secret"),
    "ALERTS-CHANNELS-timeout": (channel(HOOK, url="https://h.ex", timeout=0), "E075", "timeout"),
    "ALERTS-CHANNELS-cooldown": (channel(EMAIL, cooldown_seconds=-5), "E076", "cooldown_seconds"),
    "HEALTH-not-a-dict": ({"HEALTH": "token"}, "E017", "HEALTH"),
    "HEALTH-unknown": ({"HEALTH": {"TOKENS": None}}, "E009", "TOKENS"),
    "HEALTH-TOKEN-short": ({"HEALTH": {"TOKEN": "short"}}, "E030", "TOKEN"),
    "HEALTH-TOKEN-type": ({"HEALTH": {"TOKEN": 1234567890123456789}}, "E030", "TOKEN"),
    "HEALTH-TOKEN-whitespace-only": ({"HEALTH": {"TOKEN": " " * 20}}, "E031", "TOKEN"),
    "HEALTH-TOKEN-newline": ({"HEALTH": {"TOKEN": "a" * 20 + "\n"}}, "E031", "TOKEN"),
    "HEALTH-CRITICAL_STATUS": ({"HEALTH": {"CRITICAL_STATUS": 42}}, "E032", "CRITICAL_STATUS"),
    "HEALTH-CRITICAL_STATUS-bool": ({"HEALTH": {"CRITICAL_STATUS": True}}, "E032", "CRITICAL"),
    "HEALTH-CRITICAL_STATUS-str": ({"HEALTH": {"CRITICAL_STATUS": "503"}}, "E032", "CRITICAL"),
    "EXPOSE_CIRCUIT_NAME-string": ({"EXPOSE_CIRCUIT_NAME": "False"}, "E013", "EXPOSE"),
    "REDACT-not-a-dict": ({"REDACT": ["pin"]}, "E018", "REDACT"),
    "METRICS-not-a-dict": ({"METRICS": 100}, "E080", "METRICS"),
    "METRICS-unknown": ({"METRICS": {"MAX_SERIES": 10}}, "E009", "MAX_SERIES"),
    "METRICS-MAX_CIRCUITS": ({"METRICS": {"MAX_CIRCUITS": 0}}, "E081", "MAX_CIRCUITS"),
    "METRICS-MAX_CIRCUITS-str": ({"METRICS": {"MAX_CIRCUITS": "100"}}, "E081", "MAX_CIRCUITS"),
    "METRICS-MAX_CIRCUITS-float": ({"METRICS": {"MAX_CIRCUITS": 2.5}}, "E081", "MAX_CIRCUITS"),
    "TRACING-string": ({"TRACING": "on"}, "E082", "TRACING"),
    "REDACT-unknown": ({"REDACT": {"KEYS": []}}, "E009", "KEYS"),
    "REDACT-NAMES": ({"REDACT": {"NAMES": "pin"}}, "E040", "NAMES"),
    "REDACT-NAMES-blank": ({"REDACT": {"NAMES": ["pin", " "]}}, "E040", "NAMES"),
    "REDACT-PATTERNS-type": ({"REDACT": {"PATTERNS": [3]}}, "E041", "PATTERNS"),
    "REDACT-PATTERNS-invalid": ({"REDACT": {"PATTERNS": ["(unclosed"]}}, "E042", "PATTERNS"),
    "REDACT-PATTERNS-empty": ({"REDACT": {"PATTERNS": ["x*"]}}, "E043", "PATTERNS"),
    "OPTIONS-clock": ({"OPTIONS": {"clock": "now"}}, "E050", "clock"),
    "OPTIONS-url-scheme": (redis(url="http://127.0.0.1:6379/0"), "E051", "url"),
    "OPTIONS-url-port": (redis(url="redis://127.0.0.1:notaport/0"), "E051", "url"),
    "OPTIONS-url-type": (redis(url=6379), "E051", "url"),
    "OPTIONS-prefix-empty": (redis(prefix=""), "E052", "prefix"),
    "OPTIONS-prefix-newline": (redis(prefix="app\nx"), "E052", "prefix"),
    "OPTIONS-prefix-space": (redis(prefix="my app"), "E052", "prefix"),
    "OPTIONS-prefix-glob": (redis(prefix="app*"), "E052", "prefix"),
    "OPTIONS-prefix-braces": (redis(prefix="a{b}"), "E052", "prefix"),
    "OPTIONS-prefix-type": (redis(prefix=1), "E052", "prefix"),
    "OPTIONS-socket_timeout-nan": (redis(socket_timeout=NAN), "E053", "socket_timeout"),
    "OPTIONS-socket_timeout-inf": (redis(socket_timeout=INF), "E053", "socket_timeout"),
    "OPTIONS-socket_timeout-huge": (redis(socket_timeout=1e9), "E053", "socket_timeout"),
    "OPTIONS-socket_timeout-negative": (redis(socket_timeout=-1), "E053", "socket_timeout"),
    "OPTIONS-socket_timeout-zero": (redis(socket_timeout=0), "E053", "socket_timeout"),
    "OPTIONS-socket_timeout-string": (redis(socket_timeout="0.05"), "E053", "socket_timeout"),
    "OPTIONS-socket_connect_timeout": (
        redis(socket_connect_timeout=NAN),
        "E054",
        "socket_connect_timeout",
    ),
    "OPTIONS-reprobe_interval": (redis(reprobe_interval=0), "E055", "reprobe_interval"),
    "OPTIONS-reprobe_interval-nan": (redis(reprobe_interval=NAN), "E055", "reprobe_interval"),
    "OPTIONS-log_interval-nan": (redis(log_interval=NAN), "E056", "log_interval"),
    "OPTIONS-log_interval-negative": (redis(log_interval=-5), "E056", "log_interval"),
    "OPTIONS-defer_successes-no": (redis(defer_successes="no"), "E057", "defer_successes"),
    "OPTIONS-cluster-string": (redis(cluster="true"), "E058", "cluster"),
    "OPTIONS-sentinels-string": (
        redis(sentinels="s1:26379", service_name="mymaster"),
        "E059",
        "sentinels",
    ),
    "OPTIONS-sentinels-bad-port": (
        redis(sentinels=["s1:notaport"], service_name="mymaster"),
        "E059",
        "sentinels",
    ),
    "OPTIONS-service_name-missing": (redis(sentinels=["s1:26379"]), "E060", "service_name"),
    "OPTIONS-sentinel_kwargs": (
        redis(sentinels=["s1:26379"], service_name="m", sentinel_kwargs="pw"),
        "E061",
        "sentinel_kwargs",
    ),
    "OPTIONS-redis-py-rejects": (redis(no_such_option=1), "E002", "OPTIONS"),
}
# The isolation fields (issue 14): out of range, not finite, not a whole number, wrong type;
# in DEFAULT_POLICY and in a POLICIES entry alike. (field, value, what the message says)
ISOLATION = [
    ("max_concurrent_calls", -1, ""),
    ("max_concurrent_calls", 100_001, ""),
    ("max_concurrent_calls", INF, ""),
    ("max_concurrent_calls", 1.5, "Enter a whole number"),
    ("call_timeout_ms", NAN, ""),
    ("call_timeout_ms", 3_600_001, ""),
    ("call_timeout_ms", False, "Enter a number"),
    ("call_timeout_ms", "2s", ""),
]
for _field, _value, _says in ISOLATION:
    for _where, _values in (
        ("DEFAULT_POLICY", {_field: _value}),
        ("POLICIES", {"payments-api": {_field: _value}}),
    ):
        _key = f"{_field}: {_says}" if _says else _field
        CASES[f"{_where}-{_field}={_value!r}"] = ({_where: _values}, "E005", _key)


def errors(settings):
    with override_settings(RESILIENCE=settings):
        return [m for m in run_checks() if m.id and m.id.startswith("resilience.E")]


@pytest.mark.parametrize(("settings", "expected", "key"), CASES.values(), ids=CASES.keys())
def test_every_bad_value_has_its_own_id_a_message_naming_the_key_and_a_hint(
    settings, expected, key
):
    [error] = errors(settings)  # exactly one problem, reported once
    assert error.id == f"resilience.{expected}"
    assert key in error.msg
    assert error.hint and error.hint.strip()


def test_the_table_covers_every_key_and_option():
    import inspect

    from resilience.backends.redis import RedisBackend
    from resilience.conf import DEFAULTS, NESTED

    covered = {name.split("-")[0] + "-" + name.split("-")[1] for name in CASES if "-" in name}
    keys = {name.split("-")[0] for name in CASES}
    assert set(DEFAULTS) <= keys, set(DEFAULTS) - keys
    for key in NESTED:
        for sub in DEFAULTS[key]:
            assert f"{key}-{sub}" in covered, f"no case for {key}[{sub!r}]"
    options = [
        p.name
        for p in inspect.signature(RedisBackend.__init__).parameters.values()
        if p.kind is p.KEYWORD_ONLY or p.name in ("clock", "url", "prefix", "socket_timeout")
    ]
    for option in options:
        assert f"OPTIONS-{option}" in covered, f"no case for OPTIONS[{option!r}]"


def test_every_id_is_documented():
    from pathlib import Path

    from resilience.checks import IDS

    docs = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    for number in set(IDS.values()):
        assert f"resilience.{number}" in docs, number


def test_secrets_are_not_shown_in_check_messages():
    messages = " ".join(
        e.msg
        for e in errors({"HEALTH": {"TOKEN": "tooshort-secret"}})
        + errors(redis(url="http://user:hunter2@127.0.0.1/0"))
    )
    assert "tooshort-secret" not in messages and "hunter2" not in messages


@pytest.mark.parametrize(
    "good",
    [
        {"ALERTS": {"RECIPIENTS": ["Ops <ops@example.com>", "a@b.example"]}},
        {"ALERTS": {"FROM_EMAIL": "Resilience <resilience@example.com>", "COOLDOWN_SECONDS": 0}},
        {"ALERTS": {"SITE_URL": "https://www.example.com/shop"}},
        {"HEALTH": {"TOKEN": "x" * 16, "CRITICAL_STATUS": 500}},
        {"REDACT": {"NAMES": ["pin"], "PATTERNS": [r"tenant=(?P<secret>\w+)"]}},
        {"POLICY_REFRESH_SECONDS": 3600, "ON_BACKEND_ERROR": "deny"},
        redis(prefix="app.v2:cache", socket_timeout=10, log_interval=0, defer_successes=False),
        redis(sentinels=[("s1", 26379), "s2:26379"], service_name="mymaster"),
        # With Sentinel the host comes from the sentinels: a URL without one is complete.
        redis(url="redis://", sentinels=["s1:26379"], service_name="mymaster"),
        redis(url="redis://:pw@/2", sentinels=["s1:26379"], service_name="mymaster"),
        redis(cluster=False, socket_connect_timeout=None),
        {
            "DEFAULT_POLICY": {"max_concurrent_calls": 4, "call_timeout_ms": 2000},
            "POLICIES": {"payments-api": {"max_concurrent_calls": 0, "call_timeout_ms": 0}},
        },
    ],
)
def test_valid_values_pass(good):
    assert errors(good) == []


def test_the_memory_backend_warns_about_options_it_ignores():
    with override_settings(RESILIENCE={"OPTIONS": {"url": "redis://x"}}):
        [warning] = [m for m in run_checks() if m.id == "resilience.W003"]
    assert "url" in warning.msg


def test_settings_are_read_lazily():
    with override_settings(
        RESILIENCE={"POLICY_REFRESH_SECONDS": 2.5, "ALERTS": {"COOLDOWN_SECONDS": 9}}
    ):
        assert conf.POLICY_REFRESH_SECONDS == 2.5
        assert conf.ALERTS["COOLDOWN_SECONDS"] == 9
        assert conf.ALERTS["DELIVERY"] == "celery"  # merged with the defaults
    assert conf.POLICY_REFRESH_SECONDS == 1.0


def test_celery_delivery_without_celery_warns(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "celery" else real(name, *a)
    )
    assert "resilience.W002" in ids()
    assert "resilience.W002" not in ids(ALERTS={"DELIVERY": "sync"})


def test_a_bad_webhook_url_is_reported_without_its_value():
    url = "ftp://hooks.example/T000/B000/very-secret-token"
    [error] = errors(channel(SLACK, webhook_url=url))
    assert error.id == "resilience.E073"
    assert "very-secret-token" not in error.msg + error.hint


def test_the_shipped_channels_pass():
    assert (
        errors(
            {
                "ALERTS": {
                    "CHANNELS": [
                        {"BACKEND": EMAIL, "OPTIONS": {"cooldown_seconds": 600}},
                        {"BACKEND": HOOK, "OPTIONS": {"url": "https://h.example/x", "secret": "k"}},
                        {"BACKEND": SLACK, "OPTIONS": {"webhook_url": "https://hooks.slack.com/x"}},
                    ]
                }
            }
        )
        == []
    )


@contextlib.contextmanager
def current_celery_app(app):
    """``app`` is Celery's current app in this thread within the block (as the project's app
    is where the project defines one)."""
    previous = _state._tls.current_app
    app.set_current()
    try:
        yield app
    finally:
        _state._tls.current_app = previous


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (Celery("default", set_as_current=False), "resilience.W004"),  # Celery's own fallback
        (Celery("shop", set_as_current=False), "resilience.W005"),  # no broker_url
        (Celery("shop", set_as_current=False, broker="redis://127.0.0.1:1/0"), None),
        (Celery("default", set_as_current=False, broker="memory://"), "resilience.W004"),
    ],
    ids=["no-app", "no-broker", "ok", "fallback-app-with-env-broker"],
)
def test_celery_delivery_without_an_app_or_a_broker_warns(app, expected, settings):
    settings.DEBUG = True  # no W001 (the memory backend in production)
    with current_celery_app(app):
        found = {i for i in ids(ALERTS=ONCALL) if i in ("resilience.W004", "resilience.W005")}
        assert found == ({expected} if expected else set())
        assert ids(ALERTS={**ONCALL, "DELIVERY": "sync"}) == []
        app.conf.task_always_eager = True  # tasks run in the publishing process
        assert ids(ALERTS=ONCALL) == []


def test_nobody_to_alert_warns(settings):
    settings.DEBUG = True
    with override_settings(ADMINS=[]):
        assert ids() == ["resilience.W006"]
        assert ids(ALERTS=ONCALL) == []
    with override_settings(ADMINS=[("Ops", "ops@example.com")]):
        assert ids() == []


def test_a_new_project_with_celery_but_no_app_is_warned_by_manage_py_check(tmp_path):
    """The newcomer's case (issue 18): Celery installed, no Celery app, no recipients."""
    (tmp_path / "newsite.py").write_text(
        "SECRET_KEY = 'x'\n"
        "DEBUG = True\n"
        "INSTALLED_APPS = ['django.contrib.auth', 'django.contrib.contenttypes', 'resilience']\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(PYTHONPATH=f"{tmp_path}:{ROOT}", DJANGO_SETTINGS_MODULE="newsite")
    result = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr  # warnings do not fail check
    assert "resilience.W004" in result.stderr and "resilience.W006" in result.stderr
