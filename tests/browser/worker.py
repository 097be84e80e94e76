"""Another process calling a protected upstream through the shared backend, driven line by line.

Run with ``DJANGO_SETTINGS_MODULE=tests.support.procsettings`` (test database and RESILIENCE from
the environment). Its policy registry refreshes in the background like any web or worker
process. Commands on stdin, one JSON answer per line on stdout:
``ok``/``fail`` (one protected call that succeeds/raises), ``policy``, ``quit``.
"""

import json
import os
import sys

import django

django.setup()

from resilience import CircuitOpenError, breaker, circuit_breaker, events  # noqa: E402
from resilience.policies import registry  # noqa: E402

CIRCUIT = os.environ.get("RESILIENCE_TEST_CIRCUIT", "demo-upstream")


class UpstreamDown(Exception):
    pass


@circuit_breaker(CIRCUIT)
def call_upstream(fail: bool) -> str:
    if fail:
        raise UpstreamDown("503 from upstream")
    return "ok"


def handle(command: str) -> dict:
    if command in ("ok", "fail"):
        try:
            result = call_upstream(command == "fail")
        except UpstreamDown:
            result = "failed"
        except CircuitOpenError:
            result = "rejected"
        return {"result": result, "state": breaker(CIRCUIT).state}
    if command == "policy":
        policy = registry.get(CIRCUIT).policy
        return {"failure_threshold": policy.failure_threshold, "version": policy.version}
    return {"error": f"unknown command {command!r}"}


def main() -> None:
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        print(json.dumps(handle(command)), flush=True)
    events.flush(timeout=10)


if __name__ == "__main__":
    main()
