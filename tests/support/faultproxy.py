"""A fault-injecting TCP proxy (asyncio, in a background thread) between a client and a server."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

from tests.support.redisproc import free_port

PASS, BLACKHOLE, RESET = "pass", "blackhole", "reset"
CHUNK = 65536


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; faults are switched on and off live.

    - ``latency(s)``: every chunk waits ``s`` seconds before it is forwarded (each direction),
      order preserved — a slow network or an overloaded server;
    - ``blackhole()``: connections (old and new) are accepted and kept, data is swallowed and
      nothing ever comes back — a hung server or a dropped route;
    - ``reset()``: open connections are aborted with a TCP RST, new ones are reset at once;
    - ``refuse()``: the listening socket is closed — connection refused;
    - ``heal()``: back to plain forwarding (re-listening on the same port if needed).
    """

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.mode = PASS
        self.delay = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="faultproxy", daemon=True
        )
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()

    # --- control, from any thread ---------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def url(self, db: int = 0) -> str:
        """A Redis URL through the proxy."""
        return f"redis://{self.host}:{self.port}/{db}"

    def latency(self, seconds: float) -> None:
        self.delay = float(seconds)

    def blackhole(self) -> None:
        self.mode = BLACKHOLE

    def reset(self) -> None:
        self.mode = RESET
        self._run(self._abort_all())

    def refuse(self) -> None:
        self._run(self._unlisten())
        self._run(self._abort_all())

    def heal(self) -> None:
        self.mode = PASS
        self.delay = 0.0
        self._run(self._listen())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._unlisten())
        self._run(self._abort_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # --- the event loop side --------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.port, reuse_address=True
            )

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _abort_all(self) -> None:
        for client, upstream in list(self._conns):
            _abort(client)
            if upstream is not None:
                _abort(upstream)
        self._conns.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == RESET:
            _abort(writer)
            return
        conn: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)  # upstream down: the client sees its connection reset
            return
        conn = (writer, up_writer)
        self._conns.add(conn)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._conns.discard(conn)
            for w in conn:
                if w is not None:
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.mode == BLACKHOLE:
                    continue  # swallowed: the other side waits forever
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST, not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport = writer.transport
    transport.abort()
