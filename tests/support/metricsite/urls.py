"""``/call/?circuit=NAME&fail=1&ms=N`` makes one protected call of circuit NAME that takes about N
ms and raises when ``fail`` is set; the ``X-Outcome`` header says ``success``, ``failure`` or
``rejected``. ``/ok/`` answers at once; ``/resilience/metrics/`` is the endpoint under test."""

import time

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from resilience import CircuitOpenError, breaker


def call(request: HttpRequest) -> HttpResponse:
    try:
        with breaker(request.GET["circuit"]):
            time.sleep(int(request.GET.get("ms", "0")) / 1000)
            if request.GET.get("fail"):
                raise ConnectionError("the upstream failed")
    except CircuitOpenError:
        outcome = "rejected"
    except ConnectionError:
        outcome = "failure"
    else:
        outcome = "success"
    response = HttpResponse(outcome, content_type="text/plain")
    response["X-Outcome"] = outcome
    return response


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain", headers={"X-Outcome": "ok"})


urlpatterns = [
    path("call/", call),
    path("ok/", ok),
    path("resilience/", include("resilience.urls")),
]
