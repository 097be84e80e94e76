"""Building the redis-py client for the Redis backend (URL, TLS, ACL, Sentinel, Cluster)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.retry import Retry
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImproperlyConfigured(
        "resilience.backends.redis.RedisBackend needs redis-py: "
        "pip install django-resilience[redis]"
    ) from e

from resilience.sanitize import redact_url

LUA_DIR = Path(__file__).with_name("lua")
# What the backend catches around a Redis call (and the decoding of its reply): anything that
# is an Exception. redis-py documents RedisError (refused/reset/timeout, READONLY, OOM, a script
# error) and OSError, but a connection closed under a reader raises ValueError ("I/O operation
# on closed file") or AttributeError ("'NoneType' object has no attribute 'readline'"), and a
# garbled reply TypeError or ValueError: none of them may reach a protected call. BaseException
# (KeyboardInterrupt, SystemExit, task cancellation) is not an error of Redis and goes through.
ERRORS: tuple[type[BaseException], ...] = (Exception,)


@cache
def script_source(name: str) -> str:
    """The Lua source of operation ``name``: its header comment, the shared helpers, its body."""
    lines = (LUA_DIR / f"{name}.lua").read_text().splitlines(keepends=True)
    split = next((i for i, line in enumerate(lines) if not line.startswith("--")), len(lines))
    common = (LUA_DIR / "common.lua").read_text()
    return "".join(lines[:split]) + common + "\n" + "".join(lines[split:])


def host_port(value: Any) -> tuple[str, int]:
    """``("host", port)`` from a pair or a ``"host:port"`` string."""
    if isinstance(value, str):
        host, _, port = value.rpartition(":")
        return host, int(port)
    host, port = value
    return str(host), int(port)


def connect(
    url: str,
    socket_timeout: float,
    connect_timeout: float,
    *,
    sentinels: Iterable[Any] | None = None,
    service_name: str | None = None,
    sentinel_kwargs: dict[str, Any] | None = None,
    cluster: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[Any, str, tuple[str, ...]]:
    """``(client, where, secrets)``: the client, a printable location, strings to mask in logs.

    No socket is opened here (``AppConfig.ready()`` and settings changes stay I/O-free).
    """
    options = dict(options or {})
    common = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        # Never retry: a script whose reply was lost may have run, and the caller must not
        # wait more than one socket_timeout.
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
        **options,
    }
    parsed = parse_url(url)
    secrets = tuple(s for s in (options.get("password"), parsed.get("password")) if s)
    if sentinels:
        from redis.sentinel import Sentinel, SentinelManagedSSLConnection

        if not service_name:
            raise ImproperlyConfigured("RedisBackend: 'sentinels' needs a 'service_name'.")
        nodes = [host_port(s) for s in sentinels]
        master = {k: parsed[k] for k in ("db", "username", "password") if k in parsed}
        if url.startswith("rediss://"):
            master["connection_class"] = SentinelManagedSSLConnection
        sentinel_options = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            **(sentinel_kwargs or {}),
        }
        secrets += tuple(s for s in [sentinel_options.get("password")] if s)
        client = Sentinel(nodes, sentinel_kwargs=sentinel_options).master_for(
            service_name, **master, **common
        )
        watch_master(client.connection_pool)
        where = f"sentinel:{service_name}@" + ",".join(f"{h}:{p}" for h, p in nodes)
        return client, where, secrets
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **common), redact_url(url), secrets
    client = redis.Redis.from_url(url, **common)
    pool = client.connection_pool
    pool.connection_class(**pool.connection_kwargs)  # unknown options fail now, not per call
    return client, redact_url(url), secrets


SENTINEL_WATCH_SECONDS = 1.0


def watch_master(pool: Any, interval: float = SENTINEL_WATCH_SECONDS) -> threading.Thread:
    """Ask the sentinels for the master every ``interval`` seconds, in a daemon thread.

    After a graceful failover the old master stays writable for seconds until Sentinel demotes
    it, so pooled connections to it never fail: without this they would keep writing circuit
    state there, to be wiped when it resyncs. ``get_master_address()`` notices the new address,
    closes the idle connections, and makes the pool drop busy ones when they are released. The
    thread holds the pool weakly and ends with it.
    """
    ref = weakref.ref(pool)

    def run() -> None:
        while True:
            time.sleep(interval)
            current = ref()
            if current is None:
                return
            try:
                current.get_master_address()
            except Exception:  # noqa: S110 - sentinels down: the call path handles the outage
                pass
            del current

    thread = threading.Thread(target=run, name="resilience-sentinel-watch", daemon=True)
    thread.start()
    return thread


def drop_idle_connections(client: Any, cluster: bool) -> None:
    """Close the pooled connections no thread is using; never raises.

    After a failed call: redis-py has dropped the connection that failed, but idle ones may lead
    to the same dead or hung server and would each fail once more after the outage. The ones in
    use are left alone (each pool's lock keeps them apart): closing a socket another thread is
    reading from makes redis-py raise ``ValueError``/``AttributeError`` in that thread.
    """
    try:
        if cluster:
            nodes = client.get_nodes()
            pools = [n.redis_connection.connection_pool for n in nodes if n.redis_connection]
        else:
            pools = [client.connection_pool]
        for pool in pools:
            pool.disconnect(inuse_connections=False)
    except Exception:  # noqa: S110 - best effort; never raise from error handling
        pass
