"""A real HTTP server receiving webhook (and Slack-format) POSTs on a free loopback port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # what the server answered

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        hooks = self.server.hooks
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        status = hooks._answer()
        if status == 0:  # hold: received, never answered until released
            hooks._record(self.path, self._headers(), body, 0)
            hooks._released.wait(60)
            status = 200
        else:
            hooks._record(self.path, self._headers(), body, status)
        payload = b"ok" if status < 300 else b"no"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the sender gave up

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hooks: HookServer


class HookServer:
    """``posts`` lists every POST received (``status`` 0: held); ``fail_next(code, times)``
    answers the next POSTs with ``code``; ``fail_always(code)``; ``hold_next()`` receives the
    next POST and answers only after ``release()``."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hooks = self
        self.host, self.port = self._server.server_address[:2]
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.posts: list[Post] = []
        self._plan: list[int] = []
        self._always: int | None = None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> HookServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.posts.clear()
            self._plan.clear()
            self._always = None
        self._released.set()

    def fail_next(self, code: int, times: int = 1) -> None:
        with self._lock:
            self._plan.extend([code] * times)

    def fail_always(self, code: int) -> None:
        self._always = code

    def hold_next(self) -> None:
        self._released.clear()
        with self._lock:
            self._plan.append(0)

    def release(self) -> None:
        self._released.set()

    def accepted(self, path: str | None = None) -> list[Post]:
        """POSTs answered with a 2xx (held ones count: they were received whole)."""
        with self._lock:
            return [
                p
                for p in self.posts
                if (p.status == 0 or p.status < 300) and (path is None or p.path == path)
            ]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 20.0) -> list[Post]:
        deadline = time.monotonic() + timeout
        while len(self.accepted(path)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.accepted(path)

    def settle(self, path: str | None = None, quiet: float = 1.0) -> list[Post]:
        """Accepted POSTs once none arrived for ``quiet`` seconds (bounded at 20 s)."""
        deadline = time.monotonic() + 20
        seen, since = len(self.posts), time.monotonic()
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.posts) != seen:
                seen, since = len(self.posts), time.monotonic()
        return self.accepted(path)

    def _answer(self) -> int:
        with self._lock:
            if self._plan:
                return self._plan.pop(0)
        return self._always or 200

    def _record(self, path: str, headers: dict[str, str], body: bytes, status: int) -> None:
        with self._lock:
            self.posts.append(Post(path, headers, body, status))

    def __enter__(self) -> HookServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
