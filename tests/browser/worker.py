"""Another process calling a protected upstream through the shared backend, driven line by line.

Run with ``DJANGO_SETTINGS_MODULE=tests.support.procsettings`` (test database and RESILIENCE from
the environment). Its policy registry refreshes in the background like any web or worker
process. Commands on stdin, one JSON answer per line on stdout:
``ok``/``fail`` (one protected call that succeeds/raises), ``hold`` (one more protected call
that stays in flight, in a thread, until ``let go``), ``let go``, ``policy``, ``quit``.
"""

import json
import os
import sys
import threading

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


class Holder:
    """Protected calls that stay inside the upstream until ``let_go()``."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.threads: list[threading.Thread] = []

    def hold(self) -> str:
        """Start one call; ``"holding"`` once it is inside, or how it was refused."""
        inside, outcome = threading.Event(), []

        @circuit_breaker(CIRCUIT)
        def hang() -> None:
            inside.set()
            self.go.wait(60)

        def run() -> None:
            try:
                hang()
            except CircuitOpenError as exc:
                outcome.append(exc.state)
                inside.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        inside.wait(15)
        if outcome:
            thread.join(15)
            return outcome[0]
        self.threads.append(thread)
        return "holding"

    def let_go(self) -> int:
        self.go.set()
        for thread in self.threads:
            thread.join(15)
        count, self.threads, self.go = len(self.threads), [], threading.Event()
        return count


holder = Holder()


def handle(command: str) -> dict:
    if command == "hold":
        return {"result": holder.hold(), "in_flight": breaker(CIRCUIT).snapshot()["in_flight"]}
    if command == "let go":
        return {"released": holder.let_go()}
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
    holder.let_go()
    events.flush(timeout=10)


if __name__ == "__main__":
    main()
