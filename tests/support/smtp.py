"""A real SMTP server (aiosmtpd) on a free loopback port: records mail, fails or hangs on demand."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections import deque
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.support.redisproc import free_port


class SMTPServer:
    """``messages`` holds every accepted message (parsed), in order.

    ``fail_next(code, times)`` answers the next DATA commands with that code instead of 250;
    ``fail_always(code)`` until ``clear()``; ``hold_next()`` records the next message, then does
    not answer until ``release()`` (a server that hangs after receiving the data).
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.attempts = 0
        self._replies: deque[str] = deque()
        self._always: str | None = None
        self._hold = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._controller = Controller(
            self, hostname=self.host, port=self.port, server_hostname="localhost"
        )

    # --- aiosmtpd handler hook ------------------------------------------------------------------

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        with self._lock:
            self.attempts += 1
            reply = self._always or (self._replies.popleft() if self._replies else None)
            hold, self._hold = self._hold, False
        if reply:
            return reply
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        while hold and not self._released.is_set():
            await asyncio.sleep(0.01)
        return "250 OK"

    # --- control ---------------------------------------------------------------------------------

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._controller.stop()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.attempts = 0
            self._replies.clear()
            self._always = None
            self._hold = False
            self._released.clear()

    def fail_next(self, code: int, times: int = 1) -> None:
        with self._lock:
            self._replies.extend([f"{code} Try again later"] * times)

    def fail_always(self, code: int) -> None:
        with self._lock:
            self._always = f"{code} Rejected"

    def hold_next(self) -> None:
        with self._lock:
            self._hold = True
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages arrived; returns all of them (maybe fewer)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def settle(self, quiet: float = 1.0, timeout: float = 20.0) -> list[EmailMessage]:
        """Wait until no new message arrived for ``quiet`` seconds; returns all messages."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.messages), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.messages) != seen:
                seen, since = len(self.messages), time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return list(self.messages)

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
