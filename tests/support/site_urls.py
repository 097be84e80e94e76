"""Views for the edge tests: each raises what a protected call would, sync and async."""

from django.http import HttpResponse
from django.urls import include, path

from resilience import circuit_breaker
from resilience.exceptions import CircuitOpenError


def _open(request):
    raise CircuitOpenError("secret-circuit", float(request.GET.get("after", "12.2")))


async def _async_open(request):
    raise CircuitOpenError("secret-circuit", 4.5)


def _boom(request):
    raise ValueError("not a circuit problem")


@circuit_breaker("payments-api")
def charge():
    return "charged"


def _checkout(request):
    return HttpResponse(charge())


urlpatterns = [
    path("open/", _open),
    path("async-open/", _async_open),
    path("boom/", _boom),
    path("checkout/", _checkout),
    path("resilience/", include("resilience.urls")),
]
