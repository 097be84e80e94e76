"""django-resilience: circuit breakers for Django with admin-edited policies and shared state."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"
__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "ResilienceError",
    "breaker",
    "circuit_breaker",
]

if TYPE_CHECKING:
    from resilience.decorators import breaker, circuit_breaker
    from resilience.exceptions import BulkheadFullError, CircuitOpenError, ResilienceError

# Imported lazily so that `import resilience` never touches Django models before apps are ready.
_LAZY = {
    "circuit_breaker": "resilience.decorators",
    "breaker": "resilience.decorators",
    "BulkheadFullError": "resilience.exceptions",
    "CircuitOpenError": "resilience.exceptions",
    "ResilienceError": "resilience.exceptions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resilience' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
