"""One way to protect a function with each library, in memory or with its Redis storage."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from typing import Any

OURS = "ours"
# Which library can protect what. pybreaker has no asyncio support (only Tornado coroutines);
# purgatory's sync flavour is measured too because it exists.
SYNC_LIBS = (OURS, "pybreaker", "circuitbreaker", "purgatory")
ASYNC_LIBS = (OURS, "circuitbreaker", "purgatory", "aiobreaker")
# Libraries with a Redis state storage, and whether that storage is used from sync or async code.
REDIS_LIBS = {OURS: "sync", "pybreaker": "sync", "aiobreaker": "async", "purgatory": "async"}
PEERS = ("pybreaker", "circuitbreaker", "purgatory", "aiobreaker")
DISTRIBUTIONS = {OURS: "django-resilience", **{lib: lib for lib in PEERS}}
# Our breaker trips on this many consecutive failures at most (the model's upper bound).
MAX_THRESHOLD = 1_000_000


def installed(lib: str) -> bool:
    return lib == OURS or importlib.util.find_spec(lib) is not None


def version(lib: str) -> str | None:
    try:
        return metadata.version(DISTRIBUTIONS[lib])
    except metadata.PackageNotFoundError:
        return None


@dataclass
class Protected:
    """A protected function, the library's breaker object and the Redis client it talks through."""

    lib: str
    func: Callable[..., Any]
    breaker: Any = None
    client: Any = None  # redis.Redis or redis.asyncio.Redis: PING is timed on it


def set_policy(name: str, **fields: Any) -> None:
    """Create or update our policy row (``save()`` invalidates the in-process cache)."""
    from resilience.models import BreakerPolicy

    recovery = fields.get("recovery_timeout", 60.0)
    fields.setdefault("max_recovery_timeout", max(600.0, recovery))
    # Worker processes configure the same circuit: only the first one writes.
    if not BreakerPolicy.objects.filter(name=name, **fields).exists():
        BreakerPolicy.objects.update_or_create(name=name, defaults=fields)


def protect(
    lib: str,
    func: Callable[..., Any],
    name: str,
    *,
    threshold: int = 5,
    recovery: int = 86_400,
    redis_url: str | None = None,
) -> Protected:
    """``func`` behind ``lib``'s breaker for circuit ``name``: opens after ``threshold``
    consecutive failures and stays open ``recovery`` seconds; state in Redis when ``redis_url``
    is given (ours: whatever backend the Django settings name)."""
    threshold = min(threshold, MAX_THRESHOLD)
    builder = _BUILDERS[lib]
    return builder(func, name, threshold, recovery, redis_url)


def _ours(func: Callable, name: str, threshold: int, recovery: int, redis_url: str | None):
    from resilience import circuit_breaker
    from resilience.backends import get_backend
    from resilience.policies import registry

    set_policy(name, failure_threshold=threshold, recovery_timeout=float(recovery))
    # Load the row now: inside an event loop a cache miss runs on defaults until the refresh.
    registry.get(name)
    client = getattr(get_backend(), "client", None) if redis_url else None
    breaker = circuit_breaker(name)
    return Protected(OURS, breaker(func), breaker, client)


def _pybreaker(func: Callable, name: str, threshold: int, recovery: int, redis_url: str | None):
    import pybreaker

    storage, client = None, None
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=name)
    breaker = pybreaker.CircuitBreaker(
        fail_max=threshold, reset_timeout=recovery, state_storage=storage, name=name
    )
    return Protected("pybreaker", breaker(func), breaker, client)


def _circuitbreaker(
    func: Callable, name: str, threshold: int, recovery: int, redis_url: str | None
):
    import circuitbreaker

    if redis_url:
        raise ValueError("circuitbreaker has no shared state storage")
    breaker = circuitbreaker.CircuitBreaker(
        failure_threshold=threshold, recovery_timeout=recovery, name=name
    )
    return Protected("circuitbreaker", breaker(func), breaker)


def _purgatory(func: Callable, name: str, threshold: int, recovery: int, redis_url: str | None):
    import purgatory

    if inspect.iscoroutinefunction(func):
        uow = purgatory.AsyncRedisUnitOfWork(redis_url) if redis_url else None
        factory: Any = purgatory.AsyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=recovery, uow=uow
        )
    else:
        if redis_url:
            raise ValueError("the benchmark measures purgatory's async Redis storage only")
        factory = purgatory.SyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=recovery
        )
    client = factory.uow.contexts.redis if redis_url else None
    return Protected("purgatory", factory(name)(func), factory, client)


def _aiobreaker(func: Callable, name: str, threshold: int, recovery: int, redis_url: str | None):
    import aiobreaker
    from aiobreaker.storage.redis import CircuitRedisStorage

    storage, client = None, None
    if redis_url:
        import redis

        # aiobreaker's Redis storage calls a synchronous client from inside its coroutines.
        client = redis.Redis.from_url(redis_url)
        storage = CircuitRedisStorage(aiobreaker.CircuitBreakerState.CLOSED, client, name)
    breaker = aiobreaker.CircuitBreaker(
        fail_max=threshold,
        timeout_duration=timedelta(seconds=recovery),
        state_storage=storage,
        name=name,
    )
    return Protected("aiobreaker", breaker(func), breaker, client)


_BUILDERS = {
    OURS: _ours,
    "pybreaker": _pybreaker,
    "circuitbreaker": _circuitbreaker,
    "purgatory": _purgatory,
    "aiobreaker": _aiobreaker,
}
