"""One load process: threads making protected calls through ``@circuit_breaker``, measured.

Run by ``tests.outages.load.Load`` as ``python -m tests.outages.loadworker CONFIG.json`` with
``DJANGO_SETTINGS_MODULE=tests.support.procsettings``. Every call's start, duration and outcome,
the backend's ``health()["degraded"]`` over time, every transition handed to the events layer
and every exception that is not the upstream's own or ``CircuitOpenError`` (a "leak") are
written as JSON to ``CONFIG["out"]`` when the control file says stop, with the stack of any
call still running after ``CONFIG["stall"]`` seconds (where the time went).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import django

OK, FAILED, REJECTED, LEAK = 0, 1, 2, 3


class UpstreamError(Exception):
    """What the protected function raises while the control file says ``fail``."""


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    django.setup()

    from resilience import CircuitOpenError, circuit_breaker, events
    from resilience.backends import get_backend

    control: dict[str, Any] = {"fail": False, "stop": False}
    emitted: list[list[Any]] = []
    leaks: list[str] = []
    health: list[list[Any]] = []
    reasons: list[list[Any]] = []
    lock = threading.Lock()

    real_emit = events.emit

    def recording_emit(circuit: str, transitions: list, *args: Any, **kwargs: Any) -> None:
        # Instrumentation only: which transitions this process was handed, then the real thing.
        with lock:
            emitted.extend([t.id, t.kind, t.at_ms, circuit] for t in transitions)
        real_emit(circuit, transitions, *args, **kwargs)

    events.emit = recording_emit

    def protected(name: str) -> Any:
        @circuit_breaker(name)
        def upstream() -> str:
            # "fail": True/False, or the probability that a call fails (the soak).
            if random.random() < float(control["fail"]):  # noqa: S311 - not cryptography
                raise UpstreamError("upstream is failing")
            return "ok"

        return upstream

    upstreams = [protected(name) for name in config["circuits"]]

    def read_control() -> None:
        path = Path(config["control"])
        while not control["stop"]:
            try:
                control.update(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass  # being rewritten: read it again next time
            try:
                state = get_backend().health()
            except Exception as exc:  # health() must not raise: that is a leak too
                with lock:
                    leaks.append(f"health: {exc!r}"[:500])
                state = {}
            degraded = bool(state.get("degraded"))
            if not health or health[-1][1] != degraded:  # a change: keep why
                reasons.append([round(time.time(), 4), degraded, state.get("reason", "")])
            health.append([round(time.time(), 4), degraded])
            time.sleep(0.02)

    inflight: dict[int, float] = {}  # thread id -> perf_counter() when its call started
    stalls: list[str] = []

    def watchdog() -> None:
        # Where is a call that is taking too long? One stack per stalled call, at most 20.
        sampled: set[tuple[int, float]] = set()
        while not control["stop"] and len(stalls) < 20:
            now = time.perf_counter()
            frames = sys._current_frames()
            for ident, started in list(inflight.items()):
                if now - started > config["stall"] and (ident, started) not in sampled:
                    sampled.add((ident, started))
                    if ident in frames:
                        stack = traceback.format_stack(frames[ident])
                        stalls.append("".join(f for f in stack if "/resilience/" in f)[-1500:])
            time.sleep(0.05)

    def caller(out: list[list[float]]) -> None:
        pace = config["pace"]
        ident = threading.get_ident()
        while not control["stop"]:
            started = time.time()
            t0 = inflight[ident] = time.perf_counter()
            upstream = random.choice(upstreams)  # noqa: S311
            try:
                upstream()
                outcome = OK
            except UpstreamError:
                outcome = FAILED
            except CircuitOpenError:
                outcome = REJECTED
            except BaseException as exc:  # noqa: BLE001 - a Redis error reaching the caller
                outcome = LEAK
                frames = traceback.format_exception(exc)
                where = [f for f in frames if "/resilience/" in f][-2:] + frames[-2:-1]
                with lock:
                    leaks.append(f"{type(exc).__module__}.{exc!r} at {''.join(where)}"[:2000])
            inflight.pop(ident, None)
            out.append([round(started, 4), round(time.perf_counter() - t0, 5), outcome])
            time.sleep(pace)

    for upstream in upstreams:  # connect, load the scripts and the policies before "ready"
        upstream()
    Path(config["ready"]).write_text("ready")
    threading.Thread(target=read_control, daemon=True).start()
    threading.Thread(target=watchdog, daemon=True).start()
    per_thread: list[list[list[float]]] = [[] for _ in range(config["threads"])]
    threads = [threading.Thread(target=caller, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = events.flush(timeout=60)
    get_backend().close()
    result = {
        "calls": [call for out in per_thread for call in out],
        "health": health,
        "reasons": reasons,
        "emitted": emitted,
        "leaks": leaks,
        "flushed": stored,
        "stalls": stalls,
    }
    Path(config["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
