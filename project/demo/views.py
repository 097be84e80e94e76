"""Demo pages: the flaky upstream, its control panel, and a page protected by a breaker."""

import time

import requests
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from project.demo import upstream
from resilience import CircuitOpenError, breaker, circuit_breaker

CIRCUIT = "demo-upstream"


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


def index(request: HttpRequest) -> HttpResponse:
    url = request.build_absolute_uri("/upstream/")
    context = {"mode": upstream.get_mode(), "modes": upstream.MODES, "circuit": CIRCUIT}
    try:
        context["quote"] = fetch_quote(url)["quote"]
    except CircuitOpenError as exc:
        context["rejected"] = f"Circuit open: retry in {exc.retry_after:.0f} s (no upstream call)"
    except requests.RequestException as exc:
        context["error"] = f"Upstream failed: {type(exc).__name__}"
    context["snapshot"] = breaker(CIRCUIT).snapshot()
    return render(request, "demo/index.html", context)


@require_POST
def control(request: HttpRequest) -> HttpResponse:
    upstream.set_mode(request.POST.get("mode", "healthy"))
    return redirect("demo-index")
