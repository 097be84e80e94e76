"""This process's Django app behind real servers, in threads: wsgiref (WSGI) and uvicorn (ASGI).

In-process, so the test's settings, backend, clock and database are the server's too; the
requests still cross a real socket, and the server does its own header and body handling.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@contextmanager
def wsgi_server() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a wsgiref server running Django's WSGI application."""
    from django.core.wsgi import get_wsgi_application

    server: WSGIServer = make_server(
        "127.0.0.1", 0, get_wsgi_application(), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@contextmanager
def asgi_server() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a uvicorn server running Django's ASGI application.

    uvicorn logs through the standard loggers (``uvicorn.error``), so ``caplog`` sees its
    "Exception in ASGI application".
    """
    import uvicorn
    from django.core.asgi import get_asgi_application

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        get_asgi_application(), lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
