"""Test helpers for projects using django-resilience, and the pytest plugin (``-p resilience``).

``override_policy(name, **fields)``, ``force_open(name)`` and ``force_closed(name)`` work as
context managers and as decorators (sync and async test functions, ``SimpleTestCase``
classes). With pytest, the markers ``@pytest.mark.resilience_open("payments-api")`` /
``@pytest.mark.resilience_closed(...)`` and the same-named fixtures do the same for one test.

Loaded as a pytest plugin before Django is configured: it imports the policy registry and the
backends (importable without settings) but not the models; the ``BreakerPolicy`` model is
reached through ``registry.model`` once Django is set up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.test.utils import TestContextDecorator

try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pytest = None  # type: ignore[assignment]

from resilience.backends import get_backend
from resilience.policies import ResolvedPolicy, registry

__all__ = ["force_closed", "force_open", "override_policy"]

# name -> stack of ResolvedPolicy (innermost override last); consulted before the registry.
_overrides: dict[str, list[Any]] = {}


def _install_hook() -> None:
    """Route ``registry.get`` through ``_overrides`` (once per process)."""
    if getattr(registry.get, "resilience_testing_hook", False):
        return
    real_get = registry.get

    def get(name: str) -> Any:
        stack = _overrides.get(name)
        return stack[-1] if stack else real_get(name)

    get.resilience_testing_hook = True  # type: ignore[attr-defined]
    registry.get = get  # type: ignore[method-assign]


class override_policy(TestContextDecorator):  # lower case, like override_settings
    """Make circuit ``name`` run on these ``BreakerPolicy`` field values; no database access.

    The values are applied over the settings defaults (``POLICIES[name]``, ``DEFAULT_POLICY``)
    and validated like the admin form; a database row, if any, is not read. The circuit's state
    in the backend is left as it is. Overrides nest; leaving one restores the previous values.
    """

    def __init__(self, name: str, **fields: Any) -> None:
        self.name = name
        self.fields = fields
        self._resolved: Any = None
        super().__init__()

    def enable(self) -> Any:
        row = registry.model.from_settings(self.name)
        for field, value in self.fields.items():
            if not hasattr(row, field) or field in ("id", "pk", "name"):
                raise TypeError(f"override_policy: {field!r} is not a BreakerPolicy field")
            setattr(row, field, value)
        row.clean_fields()
        row.clean()
        _install_hook()
        self._resolved = ResolvedPolicy.from_row(row)
        _overrides.setdefault(self.name, []).append(self._resolved)
        registry.invalidate(self.name)  # breakers drop the policy they cached
        return self._resolved

    def disable(self) -> None:
        stack = _overrides.get(self.name, [])
        if self._resolved in stack:
            stack.remove(self._resolved)
        if not stack:
            _overrides.pop(self.name, None)
        self._resolved = None
        registry.invalidate(self.name)


class force_open(override_policy):
    """Every call of circuit ``name`` is rejected with ``CircuitOpenError`` (mode forced open).

    ``retry_after`` (seconds) is what the rejections report; by default the recovery timeout.
    """

    def __init__(self, name: str, retry_after: float | None = None) -> None:
        fields: dict[str, Any] = {"mode": "forced_open"}
        if retry_after is not None:
            fields.update(recovery_timeout=retry_after, max_recovery_timeout=retry_after)
        super().__init__(name, **fields)


class force_closed(override_policy):
    """Circuit ``name`` starts closed and cannot trip: calls run through the real breaker.

    A circuit that is open in the backend is reset first; that reset is not recorded as an
    event.
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            mode="enforced",
            failure_threshold=1_000_000,  # the largest value BreakerPolicy allows
            failure_rate_threshold=0,
            slow_call_ms=0,
            max_concurrent_calls=0,
            call_timeout_ms=0,
        )

    def enable(self) -> Any:
        resolved = super().enable()
        backend = get_backend()
        if backend.snapshot(self.name, resolved.policy)["state"] != "closed":
            transitions = backend.reset(self.name, resolved.policy)
            backend.ack(self.name, [t.id for t in transitions])
        return resolved


# --- pytest plugin ------------------------------------------------------------------------------

MARKERS = {
    "resilience_open": (
        force_open,
        "resilience_open(*names, retry_after=None): force these circuits open for the test.",
    ),
    "resilience_closed": (
        force_closed,
        "resilience_closed(*names): these circuits start closed and cannot trip in the test.",
    ),
}


def pytest_configure(config: Any) -> None:
    for _, line in MARKERS.values():
        config.addinivalue_line("markers", line)


@contextlib.contextmanager
def _forcing(node: Any) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for marker_name, (helper, _) in MARKERS.items():
            for marker in node.iter_markers(marker_name):
                if not marker.args:
                    raise TypeError(f"@pytest.mark.{marker_name} needs at least one circuit name")
                for name in marker.args:
                    stack.enter_context(helper(name, **marker.kwargs))
        yield


def _factory(helper: Callable[..., override_policy]) -> Iterator[Callable[..., Any]]:
    with contextlib.ExitStack() as stack:
        yield lambda name, **kwargs: stack.enter_context(helper(name, **kwargs))


if pytest is not None:

    @pytest.fixture(autouse=True)
    def _resilience_markers(request: Any) -> Iterator[None]:
        with _forcing(request.node):
            yield

    @pytest.fixture
    def resilience_open() -> Iterator[Callable[..., Any]]:
        """``resilience_open("payments-api", retry_after=30)``: forced open until the test ends."""
        yield from _factory(force_open)

    @pytest.fixture
    def resilience_closed() -> Iterator[Callable[..., Any]]:
        """``resilience_closed("payments-api")``: closed, cannot trip, until the test ends."""
        yield from _factory(force_closed)

    @pytest.fixture
    def resilience_policy() -> Iterator[Callable[..., Any]]:
        """``resilience_policy("payments-api", failure_threshold=1)``: ``override_policy``."""
        yield from _factory(override_policy)
