"""``/quote/`` calls the upstream (``HANG_UPSTREAM_URL``) as a careful user writes it;
``/ok/`` is an unrelated page. ``HANG_PROTECTION`` says what guards the call: ``ours``
(``CircuitBreakerAdapter`` on circuit ``CIRCUIT``, policy from the database), ``pybreaker``
(one breaker shared through Redis, ``HANG_PYBREAKER`` = JSON with ``fail_max``,
``reset_timeout``, ``redis_url``) or ``none``. The ``X-Outcome`` header says what happened:
``upstream`` (answered), ``refused`` (the breaker said no) or ``failed`` (an error reached us).
"""

import json
import os

import requests
from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience import CircuitOpenError
from resilience.contrib.requests import CircuitBreakerAdapter
from tests.support.hangscenario import CIRCUIT

UPSTREAM = os.environ.get("HANG_UPSTREAM_URL", "http://127.0.0.1:9/")
PROTECTION = os.environ.get("HANG_PROTECTION", "ours")
TIMEOUT = 30  # what a careful user writes: never wait forever

session = requests.Session()
refusals: tuple[type[BaseException], ...] = (CircuitOpenError,)
pybreaker_guard = None
if PROTECTION == "ours":
    session.mount("http://", CircuitBreakerAdapter(CIRCUIT))
elif PROTECTION == "pybreaker":
    import pybreaker
    import redis

    options = json.loads(os.environ["HANG_PYBREAKER"])
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis.Redis.from_url(options["redis_url"]), namespace=CIRCUIT
    )
    pybreaker_guard = pybreaker.CircuitBreaker(
        fail_max=options["fail_max"],
        reset_timeout=options["reset_timeout"],
        state_storage=storage,
        name=CIRCUIT,
    )
    refusals = (pybreaker.CircuitBreakerError,)
elif PROTECTION != "none":
    raise ValueError(f"HANG_PROTECTION must be ours, pybreaker or none, not {PROTECTION!r}")


def fetch() -> bytes:
    response = session.get(UPSTREAM, timeout=TIMEOUT)
    response.raise_for_status()
    return response.content


def quote(request: HttpRequest) -> HttpResponse:
    try:
        body = pybreaker_guard.call(fetch) if pybreaker_guard is not None else fetch()
    except refusals:
        return _answer("refused", b"No quote right now.")
    except requests.RequestException:
        return _answer("failed", b"The quote service failed.")
    return _answer("upstream", body)


def ok(request: HttpRequest) -> HttpResponse:
    return _answer("ok", b"ok")


def _answer(outcome: str, body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type="text/plain")
    response["X-Outcome"] = outcome
    return response


urlpatterns = [path("quote/", quote), path("ok/", ok)]
