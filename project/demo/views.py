"""Demo pages: the flaky upstream, its control panel, and pages that call it through breakers."""

import time

import httpx
import requests
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from project.demo import upstream
from resilience import CircuitOpenError, breaker, circuit_breaker
from resilience.contrib.httpx import CircuitBreakerTransport
from resilience.contrib.requests import CircuitBreakerAdapter

CIRCUIT = "demo-upstream"
HTTPX_CIRCUIT = "demo-upstream-httpx"
CLIENTS = ("decorator", "requests", "httpx")

# The three ways to protect a call. A requests session with one circuit per host
# ("http:<host>"), and an httpx client on a named circuit; both count 5xx as failures and still
# hand the response back.
session = requests.Session()
session.mount("http://", CircuitBreakerAdapter())
session.mount("https://", CircuitBreakerAdapter())
httpx_client = httpx.Client(transport=CircuitBreakerTransport(HTTPX_CIRCUIT), timeout=5)


def upstream_view(request: HttpRequest) -> HttpResponse:
    """The 'third-party API': answers according to the switch."""
    mode = upstream.get_mode()
    if mode == "failing":
        return JsonResponse({"error": "upstream is down"}, status=503)
    if mode == "slow":
        time.sleep(upstream.SLOW_SECONDS)
    return JsonResponse({"quote": "The best way out is always through.", "mode": mode})


@circuit_breaker(CIRCUIT)
def fetch_quote(url: str) -> dict:
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.json()


def circuit_of(client: str, url: str) -> str:
    if client == "requests":
        return CircuitBreakerAdapter.circuit_for(url)
    return HTTPX_CIRCUIT if client == "httpx" else CIRCUIT


def fetch_via(client: str, url: str) -> dict:
    """The upstream's JSON answer through the chosen client; raises on an error status."""
    if client == "requests":
        response = session.get(url, timeout=5)
        response.raise_for_status()
        return response.json()
    if client == "httpx":
        return httpx_client.get(url).raise_for_status().json()
    return fetch_quote(url)


def index(request: HttpRequest) -> HttpResponse:
    url = request.build_absolute_uri("/upstream/")
    client = request.GET.get("via") if request.GET.get("via") in CLIENTS else "decorator"
    circuit = circuit_of(client, url)
    context = {
        "mode": upstream.get_mode(),
        "modes": upstream.MODES,
        "clients": CLIENTS,
        "client": client,
        "circuit": circuit,
    }
    try:
        context["quote"] = fetch_via(client, url)["quote"]
    except CircuitOpenError as exc:
        context["rejected"] = f"Circuit open: retry in {exc.retry_after:.0f} s (no upstream call)"
    except (requests.RequestException, httpx.HTTPError) as exc:
        context["error"] = f"Upstream failed: {type(exc).__name__}"
    context["snapshot"] = breaker(circuit).snapshot()
    return render(request, "demo/index.html", context)


def protected(request: HttpRequest) -> HttpResponse:
    """No try/except: when the circuit is open, CircuitBreakerMiddleware answers 503."""
    try:
        answer = fetch_quote(request.build_absolute_uri("/upstream/"))
    except requests.RequestException as exc:
        return JsonResponse({"error": f"upstream failed: {type(exc).__name__}"}, status=502)
    return JsonResponse({"quote": answer["quote"]})


@require_POST
def control(request: HttpRequest) -> HttpResponse:
    upstream.set_mode(request.POST.get("mode", "healthy"))
    return redirect("demo-index")
