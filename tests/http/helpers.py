"""A real HTTP upstream on loopback whose answers each test scripts (the ``upstream`` fixture of
conftest.py serves one for the session); ``HANG``/``HANG_BODY`` are steps of its script."""

import threading
from collections import deque

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

HANG = object()  # no answer at all
HANG_BODY = object()  # headers and a first chunk, then nothing


class Upstream:
    """A threaded HTTP server: ``answer(503, 200, (429, {"Retry-After": "2"}), HANG)`` queues the
    next responses (then 200 forever); ``HANG``/``HANG_BODY`` hold the request until the test
    ends."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.script: deque = deque()
        self.seen: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.server.expect_request("").respond_with_handler(self._handle)

    def url(self, path: str = "/") -> str:
        return self.server.url_for(path)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def answer(self, *steps) -> None:
        self.script.extend(steps)

    def _handle(self, request: Request) -> Response:
        self.seen.append((request.method, request.path))
        step = self.script.popleft() if self.script else 200
        if step is HANG:
            self.release.wait(30)
            return Response("too late", 200)
        if step is HANG_BODY:
            return Response(self._stalled_body(self.release), 200, direct_passthrough=True)
        status, headers = step if isinstance(step, tuple) else (step, {})
        return Response(f"status {status}", status, headers)

    @staticmethod
    def _stalled_body(release):
        yield b"first chunk "
        release.wait(30)
        yield b"too late"

    def reset(self) -> None:
        self.release.set()  # let a hanging request finish before the next test
        self.release = threading.Event()
        self.script.clear()
        self.seen.clear()
