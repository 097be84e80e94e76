"""A tiny HTTP server answering ``200 ok`` on many loopback addresses at once (127.0.0.2 and
up, one port): as many distinct hosts as a test needs, without DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Coroutine
from typing import Any

FIRST = ipaddress.IPv4Address("127.0.0.2")
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class ManyHosts:
    def __init__(self, count: int) -> None:
        self.addresses = [str(FIRST + i) for i in range(count)]
        self.port = 0
        self.requests = 0
        self._servers: list[asyncio.base_events.Server] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="manyhosts", daemon=True
        )

    def start(self) -> ManyHosts:
        self._thread.start()
        self._run(self._listen())
        return self

    def urls(self, count: int | None = None) -> list[str]:
        return [f"http://{address}:{self.port}/" for address in self.addresses[:count]]

    def stop(self) -> None:
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _listen(self) -> None:
        first = await asyncio.start_server(self._handle, self.addresses[0], 0)
        self.port = first.sockets[0].getsockname()[1]
        self._servers = [first]
        for address in self.addresses[1:]:
            self._servers.append(await asyncio.start_server(self._handle, address, self.port))

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(RESPONSE)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
