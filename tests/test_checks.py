"""System checks on the RESILIENCE setting, through run_checks()."""

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from resilience.conf import settings as conf


def ids(**resilience):
    with override_settings(RESILIENCE=resilience):
        return sorted({m.id for m in run_checks() if m.id and m.id.startswith("resilience.")})


def messages(**resilience):
    with override_settings(RESILIENCE=resilience):
        return " ".join(m.msg for m in run_checks() if m.id and m.id.startswith("resilience."))


def test_valid_settings_have_no_errors():
    assert ids(BACKEND="resilience.backends.memory.MemoryBackend") == ["resilience.W001"]
    with override_settings(DEBUG=True):
        assert ids() == []


def test_not_a_dict():
    with override_settings(RESILIENCE=["nope"]):
        assert "resilience.E001" in {m.id for m in run_checks()}


def test_unknown_keys():
    assert "resilience.E001" in ids(BAKEND="x")
    assert "BAKEND" in messages(BAKEND="x")
    assert "resilience.E001" in ids(ALERTS={"RECIPIENT": []})


def test_backend_that_does_not_import():
    assert "resilience.E002" in ids(BACKEND="resilience.backends.nope.Nope")


@pytest.mark.parametrize(
    "bad",
    [
        {"POLICY_REFRESH_SECONDS": 0},
        {"POLICY_REFRESH_SECONDS": "1"},
        {"POLICY_REFRESH_SECONDS": float("nan")},
        {"ON_BACKEND_ERROR": "explode"},
        {"ENABLED": "yes"},
        {"ALERTS": {"DELIVERY": "pigeon"}},
        {"ALERTS": {"RECIPIENTS": "oncall@example.com"}},
        {"ALERTS": {"COOLDOWN_SECONDS": -1}},
        {"ALERTS": {"SITE_URL": "www.example.com"}},
        {"HEALTH": {"CRITICAL_STATUS": 42}},
        {"HEALTH": {"TOKEN": "short"}},
        {"OPTIONS": "redis://"},
    ],
)
def test_invalid_values(bad):
    assert "resilience.E003" in ids(**bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"DEFAULT_POLICY": {"failure_threshold": -3}},
        {"DEFAULT_POLICY": {"recovery_timeout": float("nan")}},
        {"DEFAULT_POLICY": {"thresold": 3}},
        {"POLICIES": {"payments-api": {"half_open_max_calls": 0}}},
        {"POLICIES": {"bad name!": {}}},
        {"POLICIES": {"x": "not a dict"}},
    ],
)
def test_invalid_policies(bad):
    found = ids(**bad)
    assert "resilience.E004" in found or "resilience.E005" in found


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
