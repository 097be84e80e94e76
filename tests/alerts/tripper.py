"""N processes failing calls of one circuit: ``python -m tests.alerts.tripper DIR NAME N``.

Runs with ``tests.support.procsettings`` (shared test database, Redis backend, real broker). The
parent sets Django up once and forks N workers (like a preloading web server); each writes
``DIR/ready-<pid>``, waits for ``DIR/go``, fails calls until the circuit rejects them, lets its
background threads finish and reports ``{"failed": .., "rejected": ..}`` as one JSON line.
"""

import json
import os
import sys
import time
from pathlib import Path

import django


def work(folder: Path, name: str) -> dict:
    from resilience import CircuitOpenError, circuit_breaker, events

    @circuit_breaker(name)
    def call() -> None:
        raise ConnectionError("upstream refused the connection")

    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    failed = rejected = 0
    while rejected < 3 and failed < 50:
        try:
            call()
        except ConnectionError:
            failed += 1
        except CircuitOpenError:
            rejected += 1
    return {"pid": os.getpid(), "failed": failed, "rejected": rejected, "flushed": events.flush(20)}


def main(folder: Path, name: str, count: int) -> int:
    django.setup()
    from tests.support.celeryworker import make_default

    make_default()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                # One write() below PIPE_BUF: lines of concurrent children never interleave.
                os.write(1, (json.dumps(work(folder, name)) + "\n").encode())
                status = 0
            finally:
                os._exit(status)
        children.append(pid)
    return max(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
