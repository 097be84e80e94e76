"""Background traffic for the demo, so the admin's outcome charts have something to show.

``TrafficMiddleware`` starts one daemon thread per circuit in the serving process (with the
memory backend only that process sees the calls) on its first request, unless
``DEMO_TRAFFIC`` is off. ``payments-api`` has an outage of a minute every six (it opens, its
callers are rejected, then it recovers), ``search`` (monitor mode) fails now and then, and
``demo-upstream`` follows the upstream switch of the demo page.
"""

import logging
import random
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from project.demo import upstream
from project.demo.views import fetch_via
from resilience import CircuitOpenError, circuit_breaker

logger = logging.getLogger(__name__)
CYCLE_SECONDS = 360  # payments-api: an outage of OUTAGE seconds in every cycle...
OUTAGE = (90, 150)  # ...from 1.5 min after the first request on
_started = threading.Lock()
_running: list[threading.Thread] = []


class UpstreamError(Exception):
    pass


def _simulated(latency_ms: float, failure_rate: float) -> None:
    time.sleep(random.lognormvariate(0, 0.5) * latency_ms / 1000)
    if random.random() < failure_rate:
        raise UpstreamError("simulated upstream error")


@circuit_breaker("payments-api")
def charge(failure_rate: float) -> None:
    _simulated(80, failure_rate)


@circuit_breaker("search")
def search(failure_rate: float) -> None:
    _simulated(25, failure_rate)


def _payments(started: float) -> None:
    phase = (time.monotonic() - started) % CYCLE_SECONDS
    charge(0.7 if OUTAGE[0] <= phase < OUTAGE[1] else 0.02)


def _search(started: float) -> None:
    search(0.08)


def _demo_upstream(started: float) -> None:
    if upstream.get_mode() == "hanging":
        return  # leave the bulkhead's slots to the demo page's "calls at once"
    fetch_via("decorator", f"{settings.DEMO_SITE_URL}/upstream/")


def _loop(call: Callable[[float], None], pause: float) -> None:
    started = time.monotonic()
    while True:
        try:
            call(started)
        except (CircuitOpenError, UpstreamError):
            pass  # counted by the breaker: that is the point
        except Exception as exc:  # the demo site must not lose its traffic to one odd error
            logger.debug("demo traffic: %s", exc)
        time.sleep(pause)


def start() -> None:
    """Start the traffic threads once per process."""
    with _started:
        if _running:
            return
        for name, call, pause in (
            ("payments-api", _payments, 0.25),
            ("search", _search, 0.4),
            ("demo-upstream", _demo_upstream, 1.0),
        ):
            thread = threading.Thread(
                target=_loop, args=(call, pause), name=f"demo-traffic-{name}", daemon=True
            )
            thread.start()
            _running.append(thread)


class TrafficMiddleware:
    """Starts the demo traffic with the first request the site serves (``DEMO_TRAFFIC``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEMO_TRAFFIC and not _running:
            start()
        return self.get_response(request)
