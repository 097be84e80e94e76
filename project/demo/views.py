"""Demo pages: the flaky upstream, its control panel, and pages that call it through breakers."""

import threading
import time

import httpx
import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from project.demo import upstream
from resilience import BulkheadFullError, CircuitOpenError, breaker, circuit_breaker
from resilience.conf import settings as resilience_settings
from resilience.contrib.httpx import CircuitBreakerTransport
from resilience.contrib.requests import CircuitBreakerAdapter

CIRCUIT = "demo-upstream"
HTTPX_CIRCUIT = "demo-upstream-httpx"
CLIENTS = ("decorator", "requests", "httpx")
BURST = 8  # calls made at once by "8 workers at once"

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
    if mode == "hanging":
        time.sleep(upstream.HANG_SECONDS)
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
        "burst_size": BURST,
        "recovery_timeout": settings.DEMO_POLICY["recovery_timeout"],
        "idle_seconds": resilience_settings.IDLE_CIRCUIT_SECONDS,
    }
    if request.GET.get("burst"):
        context["burst"] = burst(client, url)
    else:
        try:
            context["quote"] = fetch_via(client, url)["quote"]
        except CircuitOpenError as exc:
            context["rejected"] = f"{refusal(exc)}: retry in {exc.retry_after:.0f} s"
        except (requests.RequestException, httpx.HTTPError) as exc:
            context["error"] = f"Upstream failed: {type(exc).__name__}"
    context["snapshot"] = breaker(circuit).snapshot()
    return render(request, "demo/index.html", context)


def refusal(exc: CircuitOpenError) -> str:
    if isinstance(exc, BulkheadFullError):
        return "Refused at once, bulkhead full (no upstream call)"
    return "Refused at once, circuit open (no upstream call)"


def burst(client: str, url: str) -> list[tuple[str, float]]:
    """``BURST`` calls at once, as that many busy workers would make them: what each got and
    how long it waited. With the upstream hanging, only ``max_concurrent_calls`` of them wait
    (at most ``call_timeout_ms``); the others are refused at once, and so would be the workers
    serving them: the rest of the site keeps its workers."""
    results: list[tuple[str, float]] = [("did not finish", 0.0)] * BURST

    def one(i: int) -> None:
        started = time.monotonic()
        try:
            fetch_via(client, url)
            outcome = "answered"
        except CircuitOpenError as exc:
            outcome = refusal(exc)
        except (requests.RequestException, httpx.HTTPError) as exc:
            outcome = f"failed: {type(exc).__name__}"
        results[i] = (outcome, time.monotonic() - started)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def unrelated(request: HttpRequest) -> HttpResponse:
    """A page that never calls the upstream: it must answer whatever the upstream does."""
    return HttpResponse(
        "<!doctype html><title>Unrelated page</title><p>This page does not call the upstream, "
        'and it answers at once. <a href="/">Back to the demo</a></p>'
    )


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
