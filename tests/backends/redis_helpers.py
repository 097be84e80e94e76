"""Helpers of the RedisBackend tests (tests/backends/test_redis_*.py and others): building a
backend on a private server, seeing a thread wait for a reply, and counting what a call costs
in round trips and Redis commands. The ``redis_backend`` fixture built on them
is in tests/backends/conftest.py."""

from __future__ import annotations

import sys
import threading
import uuid

from resilience.backends.redis import RedisBackend
from resilience.clock import ManualClock
from resilience.engine import CircuitState


def make_backend(url, clock=None, **options):
    """A RedisBackend on ``url`` under a prefix of its own (tests share a server)."""
    options.setdefault("prefix", f"t{uuid.uuid4().hex[:8]}")
    # Generous outside the fault tests: a loaded CI machine must not fake an outage.
    options.setdefault("socket_timeout", 2.0)
    return RedisBackend(clock=clock, url=url, **options)


def fault_backend(redis_proc, **options):
    """A backend for the fault tests: short socket timeout and re-probe interval."""
    options.setdefault("reprobe_interval", 0.2)
    options.setdefault("socket_timeout", 0.25)
    return make_backend(redis_proc.url, ManualClock(), **options)


def waiting_for_reply(thread):
    """Whether ``thread`` is inside a redis-py call waiting for the server's reply (its request
    is sent): the moment a test makes something happen to a call in flight."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "read_response":
            return True
        frame = frame.f_back
    return False


def command_calls(client):
    """How often the server has executed each command (INFO commandstats)."""
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def cost(client, action, monkeypatch):
    """``(round trips, {command: calls})`` of ``action``: the requests this thread sent through
    redis-py (a pipeline is one), and what the server executed (INFO commandstats, so the
    commands a script runs count too)."""
    from redis.connection import AbstractConnection

    me, sent = threading.get_ident(), []
    original = AbstractConnection.send_packed_command

    def counting(self, *args, **kwargs):
        if threading.get_ident() == me and not _handshake(args[0]):
            sent.append(args)
        return original(self, *args, **kwargs)

    before = command_calls(client)
    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counting)
        action()
    after = command_calls(client)
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    for setup in ("info", *HANDSHAKE_STATS):
        diff.pop(setup, None)
    return len(sent), diff


# What redis-py sends when it opens a connection: not a round trip of the operation measured
# (a loaded machine makes the pool open one more while a background thread holds another).
HANDSHAKE = (
    b"\r\nSETINFO\r\n",
    b"\r\nHELLO\r\n",
    b"\r\nSELECT\r\n",
    b"\r\nAUTH\r\n",
    b"\r\nMAINT_NOTIFICATIONS\r\n",
)
HANDSHAKE_STATS = ("client|setinfo", "hello", "select", "auth", "client|maint_notifications")


def _handshake(packet) -> bool:
    data = b"".join(packet) if isinstance(packet, list | tuple) else bytes(packet)
    return any(marker in data[:64].upper() for marker in HANDSHAKE)


def stored_fields(redis_client, backend, name):
    """The circuit as stored in Redis, epoch blanked (to compare with the engine's state)."""
    fields = redis_client.hgetall(backend._keys(name)[0])
    state = CircuitState.from_fields(name, fields)
    state.epoch = ""
    return state
