"""No function in the package is over cyclomatic complexity 15 (radon's measure, as in
docs/quality.md), except the documented exceptions listed there; the wrappers compiled from
``resilience.wrappers.TEMPLATE`` are measured too."""

from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Function

import resilience
from resilience import wrappers

LIMIT = 15
PACKAGE = Path(resilience.__file__).parent

# (file, function): kept whole on purpose; docs/quality.md gives the reason. Nothing else.
EXCEPTIONS: set[tuple[str, str]] = set()


def _functions(blocks, prefix=""):
    """(qualified name, complexity) of every function, method and closure in ``blocks``."""
    for block in blocks:
        if not isinstance(block, Function):  # a class: its methods are listed on their own
            continue
        name = f"{prefix}{block.fullname}"
        yield name, block.complexity
        yield from _functions(block.closures, f"{name}.")


def _complexities():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("migrations/"):
            continue
        for name, complexity in _functions(cc_visit(path.read_text())):
            found[relative, name] = complexity
    for asynchronous in (False, True):  # source that radon cannot see in the module's text
        flavour = f"wrappers.py: TEMPLATE ({'coroutine' if asynchronous else 'function'})"
        for name, complexity in _functions(cc_visit(wrappers.render(asynchronous))):
            found[flavour, name] = complexity
    return found


def test_no_function_is_over_the_complexity_limit():
    over = {key: c for key, c in _complexities().items() if c > LIMIT and key not in EXCEPTIONS}
    assert not over, f"split these into smaller functions (limit {LIMIT}): {over}"


def test_the_wrapper_template_is_measured():
    found = _complexities()
    assert 10 < found["wrappers.py: TEMPLATE (function)", "make.wrapper"] <= LIMIT
    assert 10 < found["wrappers.py: TEMPLATE (coroutine)", "make.wrapper"] <= LIMIT


def test_the_documented_exceptions_still_exist():
    # An exception for a function that is gone (renamed, split) would silently cover nothing.
    assert EXCEPTIONS <= set(_complexities())
    documented = (PACKAGE.parent / "docs" / "quality.md").read_text()
    for _, name in EXCEPTIONS:
        assert name in documented
