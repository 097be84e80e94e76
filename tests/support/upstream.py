"""A real HTTP upstream on a free loopback port that answers, or hangs, and counts who waits."""

from __future__ import annotations

import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.redisproc import free_port


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        upstream = self.server.upstream
        upstream._enter()
        try:
            if upstream.hanging:
                upstream._hang(self.connection)
            body = b'{"quote": "The best way out is always through."}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the caller gave up: nothing to answer
        finally:
            upstream._leave()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    upstream: HangingUpstream


class HangingUpstream:
    """A threaded HTTP server: ``GET`` anything answers JSON at once, or, after ``hang()``,
    holds the request for ``hang_seconds`` (or until ``close()``) before answering.

    A held request stops counting as *in flight* the moment its caller closes the connection
    (a client timeout): ``in_flight`` and ``max_in_flight`` are the calls a caller is really
    waiting on, which is what a bulkhead caps. ``hits`` counts every request that arrived;
    ``hits_since_hang`` those after ``hang()``; ``first_abandoned`` is the time (``time.time()``)
    a caller first gave up on a held request.
    """

    def __init__(self, hang_seconds: float = 30.0) -> None:
        self.hang_seconds = hang_seconds
        self.hanging = False
        self.hold_seconds = 0.0
        self.hang_started: float | None = None
        self.hits = 0
        self.hits_since_hang = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_abandoned: float | None = None
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = _Server(("127.0.0.1", free_port()), _Handler)
        self._server.upstream = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/quote"

    def start(self) -> HangingUpstream:
        self._thread.start()
        return self

    def hang(self, seconds: float | None = None) -> float:
        """From now on every request is held ``seconds`` (default ``hang_seconds``) before its
        answer; ``max_in_flight`` starts again. Returns the moment (``time.time()``) it began."""
        with self._lock:
            self.hold_seconds = self.hang_seconds if seconds is None else seconds
            self.max_in_flight = self.in_flight
            self.hang_started = time.time()
            self.hanging = True
            return self.hang_started

    def heal(self) -> None:
        """Answer at once again (requests already held stay held)."""
        with self._lock:
            self.hanging = False

    def close(self) -> None:
        """Release every held request and stop serving."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> HangingUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _enter(self) -> None:
        with self._lock:
            self.hits += 1
            self.hits_since_hang += self.hanging
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _hang(self, conn: socket.socket) -> None:
        """Hold the request; return early (and stop counting it) when the caller hangs up."""
        deadline = time.monotonic() + self.hold_seconds
        while not self._released.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable and not conn.recv(1, socket.MSG_PEEK):  # EOF: the caller gave up
                with self._lock:
                    if self.first_abandoned is None:
                        self.first_abandoned = time.time()
                raise ConnectionAbortedError
