"""The names users import or configure by dotted path still resolve (docs/releasing.md: they
are the public contract): DESIGN's imports, every ``resilience.…`` path the docs and README
show, settings strings, Celery task names (stored in brokers), ``__all__`` of every module."""

import copy
import importlib
import inspect
import pathlib
import pickle
import re
import subprocess
import sys
from importlib.metadata import entry_points
from importlib.util import find_spec

import pytest
from celery import current_app
from django.utils.module_loading import import_string

import resilience
from resilience import conf, exceptions, tracing

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The fixed names of the design (imports, settings strings, the middleware, the Celery base).
DESIGN = [
    "resilience.circuit_breaker",
    "resilience.breaker",
    "resilience.CircuitOpenError",
    "resilience.BulkheadFullError",
    "resilience.ResilienceError",
    "resilience.exceptions.ResilienceError",
    "resilience.exceptions.CircuitOpenError",
    "resilience.exceptions.BulkheadFullError",
    "resilience.exceptions.CallTimeoutError",
    "resilience.exceptions.BackendError",
    "resilience.testing.override_policy",
    "resilience.testing.force_open",
    "resilience.testing.force_closed",
    "resilience.backends.base.Backend",
    "resilience.backends.memory.MemoryBackend",
    "resilience.backends.redis.RedisBackend",
    "resilience.models.BreakerPolicy",
    "resilience.models.CircuitEvent",
    "resilience.models.MaintenanceWindow",
    "resilience.models.PolicyRevision",
    "resilience.models.AlertDelivery",
    "resilience.middleware.CircuitBreakerMiddleware",
    "resilience.contrib.requests.CircuitBreakerAdapter",
    "resilience.contrib.httpx.CircuitBreakerTransport",
    "resilience.contrib.httpx.AsyncCircuitBreakerTransport",
    "resilience.contrib.celery.CircuitBreakerTask",
    "resilience.channels.Channel",
    "resilience.channels.EmailChannel",
    "resilience.channels.WebhookChannel",
    "resilience.channels.SlackChannel",
    "resilience.signals.circuit_opened",
    "resilience.signals.circuit_half_opened",
    "resilience.signals.circuit_closed",
    "resilience.tasks.send_alert",
    "resilience.tasks.send_delivery",
    "resilience.tasks.drain_outbox",
    "resilience.events.flush",
    "resilience.events.discard",
    "resilience.events.drain",
    "resilience.health_check.CircuitBreakers",
    "resilience.prometheus.ResilienceCollector",
    "resilience.urls.urlpatterns",
]

# Celery task names are strings in brokers and beat schedules: a rename strands queued tasks.
TASK_NAMES = {
    "resilience.tasks.send_alert",
    "resilience.tasks.send_delivery",
    "resilience.tasks.drain_outbox",
}

# ``resilience.…`` in the docs that are not Python paths: check ids (tests/test_checks.py),
# permissions (tests/admin), span and event names (resilience.tracing), a file name, the
# Message-ID prefix of alert e-mails (docs/alerts.md).
_CHECK_ID = re.compile(r"resilience\.[EW](\d{3}|0+x+)$")
_PERMISSIONS = {f"resilience.{p}" for p in ("reset_circuit", "force_circuit")}
_PERMISSION_PREFIX = re.compile(r"resilience\.(view|change|add|delete)_\w+$")
_NOT_PATHS = {"resilience.py", "resilience.event"}
_DOTTED = re.compile(r"\bresilience(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _tracing_names():
    source = (ROOT / "resilience" / "tracing.py").read_text()
    return set(re.findall(r'"(resilience\.[a-z_]+)"', source))


def _documented_paths():
    found = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found.update(_DOTTED.findall(page.read_text()))
    skip = _PERMISSIONS | _NOT_PATHS | _tracing_names()
    return sorted(
        p
        for p in found
        if p not in skip and not _CHECK_ID.match(p) and not _PERMISSION_PREFIX.match(p)
    )


# Modules that need an optional extra, and the package that extra installs: where it is not
# installed (the matrix's Django 4.2 session has no django-health-check), they are skipped.
EXTRAS = {"resilience.health_check": "health_check"}


def _extra_missing(path):
    return any(
        (path == module or path.startswith(module + ".")) and find_spec(package) is None
        for module, package in EXTRAS.items()
    )


def _resolve(path):
    if _extra_missing(path):
        pytest.skip(f"{path}: its optional extra is not installed")
    try:
        return importlib.import_module(path)
    except ImportError:
        return import_string(path)


@pytest.mark.parametrize("path", DESIGN)
def test_every_design_name_resolves(path):
    assert _resolve(path) is not None


@pytest.mark.parametrize("path", _documented_paths())
def test_every_path_the_docs_show_resolves(path):
    assert _resolve(path) is not None


def _functions(module):
    """The functions and methods defined in ``module`` (not those it imports)."""
    for value in vars(module).values():
        members = vars(value).values() if isinstance(value, type) else [value]
        for member in members:
            func = getattr(member, "__func__", member)
            if inspect.isfunction(func) and func.__module__ == module.__name__:
                yield func


def _names(code):
    """The global names ``code`` and the functions nested in it read."""
    found = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            found |= _names(const)
    return found


@pytest.mark.parametrize("path", [p for p in _documented_paths() if p.rsplit(".", 1)[1].isupper()])
def test_a_documented_constant_is_read_where_the_docs_say(path):
    """The docs name a limit by its module: setting it there must change what the code reads.
    (A constant moved to another module and re-exported from the documented one would be
    read from the new one only: setting the documented name would silently do nothing.)"""
    module_path, name = path.rsplit(".", 1)
    module = importlib.import_module(module_path)
    readers = [
        f"{m}.{func.__qualname__}"
        for m in _modules()
        for func in _functions(importlib.import_module(m))
        if name in _names(func.__code__)
    ]
    assert readers, f"nothing reads {path}"
    elsewhere = [r for r in readers if not r.startswith(f"{module_path}.")]
    assert elsewhere == [], f"{path} is documented, but read in another module"
    assert getattr(module, name) is not None


def test_the_settings_strings_resolve():
    assert import_string(conf.DEFAULTS["BACKEND"])
    for channel in conf.DEFAULTS["ALERTS"]["CHANNELS"]:
        assert import_string(channel["BACKEND"])


def test_celery_task_names_are_unchanged():
    importlib.import_module("resilience.tasks")  # registers them with the current app

    registered = {name for name in current_app.tasks if name.startswith("resilience.")}
    assert registered == TASK_NAMES
    for name in TASK_NAMES:
        assert import_string(name).name == name


def test_the_pytest_plugin_entry_point_loads():
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "resilience"]
    assert plugin.value == "resilience.testing" and plugin.load() is importlib.import_module(
        "resilience.testing"
    )


def _modules():
    for path in sorted((ROOT / "resilience").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if not _extra_missing(module):
            yield module


@pytest.mark.parametrize("module", list(_modules()))
def test_every_name_in_all_exists(module):
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", [])
    assert len(names) == len(set(names)), f"{module}.__all__ lists a name twice"
    assert [n for n in names if not hasattr(mod, n)] == []


def test_the_lazy_package_names_resolve_in_a_fresh_interpreter_before_setup():
    # `import resilience` and its lazy names before django.setup(): settings modules and
    # apps.py import them at that time.
    code = (
        "import resilience, sys; "
        "[getattr(resilience, n) for n in resilience.__all__]; "
        "assert 'resilience.models' not in sys.modules"
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "exc",
    [
        exceptions.CircuitOpenError("c", 2.5, "half_open"),
        exceptions.BulkheadFullError("c", 1),
        exceptions.CallTimeoutError("call cancelled after 1 s"),
        exceptions.BackendError("down"),
        exceptions.UnknownCircuitError("nope"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_exceptions_survive_pickle_and_copy(exc):
    for twin in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert type(twin) is type(exc) and str(twin) == str(exc)
        if isinstance(exc, exceptions.CircuitOpenError):
            assert (twin.circuit, twin.retry_after, twin.state) == (
                exc.circuit,
                exc.retry_after,
                exc.state,
            )
        else:
            assert twin.args == exc.args


def test_the_documented_names_include_the_split_packages():
    # Guards _documented_paths itself: a regex that found nothing would pass everything.
    paths = _documented_paths()
    assert "resilience.channels.WebhookChannel" in paths
    assert "resilience.backends.redis.RedisBackend" in paths
    assert tracing.CALL_EVENT not in paths
    assert resilience.__all__
