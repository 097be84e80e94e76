"""A web-like process calling one circuit: ``python -m tests.support.killswitch NAME SECONDS``.

Runs with ``tests.support.procsettings`` (the test database); its policy refresh thread runs as
in production. Calls NAME every 20 ms until a call goes through after rejections (or SECONDS
pass) and prints ``{"pid", "rejected", "first_ok_at"}`` as one JSON line.
"""

import json
import os
import sys
import time

import django


def main(name: str, seconds: float) -> int:
    django.setup()
    from resilience import CircuitOpenError, circuit_breaker

    @circuit_breaker(name)
    def call() -> str:
        return "ok"

    rejected, first_ok_at = 0, None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            call()
        except CircuitOpenError:
            rejected += 1
        else:
            if rejected:
                first_ok_at = time.time()
                break
        time.sleep(0.02)
    print(json.dumps({"pid": os.getpid(), "rejected": rejected, "first_ok_at": first_ok_at}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
