"""Catch the deprecation warnings that Django attributes to the package's own code."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import resilience

PACKAGE = Path(resilience.__file__).resolve().parent


@contextmanager
def package_deprecations() -> Iterator[list[str]]:
    """``with package_deprecations() as found:`` lists (after the block) every deprecation or
    pending deprecation warning raised in the block whose location is in the ``resilience``
    package. Django points such a warning at the code that uses the deprecated API, or at the
    override with an outdated signature. Warnings of other threads are not seen."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    for warning in caught:
        deprecation = issubclass(warning.category, DeprecationWarning | PendingDeprecationWarning)
        if deprecation and Path(warning.filename).resolve().is_relative_to(PACKAGE):
            found.append(f"{warning.filename}:{warning.lineno}: {warning.message}")
