"""``CircuitBreakerMiddleware``: an uncaught ``CircuitOpenError`` becomes a polite 503."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext

from resilience.conf import settings as conf
from resilience.exceptions import CircuitOpenError
from resilience.logs import ThrottledLog
from resilience.sanitize import one_line

JSON_TYPES = ("application/json", "application/problem+json")
# A refusal is expected while a circuit is open (its opening was logged and alerted once): at
# most one WARNING a minute for all of them, never Django's per-request ERROR.
REFUSALS_LOG_SECONDS = 60.0
refusals_log = ThrottledLog(logging.getLogger("resilience"), REFUSALS_LOG_SECONDS)
STYLESHEET = "resilience/circuit_open.css"


def stylesheet_url() -> str | None:
    """The 503 page's stylesheet URL, or None when the static files set-up cannot name it (no
    ``STATIC_URL``, a manifest storage that was never given it): the refusal must render
    anyway, unstyled, rather than turn into a 500."""
    try:
        return static(STYLESHEET)
    except Exception:  # ImproperlyConfigured, ValueError ("Missing staticfiles manifest entry")
        return None


def retry_after_seconds(exc: CircuitOpenError) -> int:
    """Whole seconds for ``Retry-After``: rounded up, at least 1 (0 would invite a stampede)."""
    try:
        seconds = math.ceil(exc.retry_after)
    except (OverflowError, ValueError):  # inf / nan from a misbehaving caller
        seconds = 1
    return max(1, seconds)


def _quality(accept: str, candidates: tuple[str, ...]) -> float:
    """Highest ``q`` the ``Accept`` header gives any of ``candidates`` explicitly (no wildcards)."""
    best = 0.0
    for item in accept.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() not in candidates:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, q if math.isfinite(q) else 0.0)
    return best


def wants_json(request: HttpRequest) -> bool:
    """True when the client names JSON in ``Accept`` and prefers it to HTML."""
    accept = request.headers.get("Accept", "")
    json_q = _quality(accept, JSON_TYPES)
    return json_q > 0 and json_q >= _quality(accept, ("text/html", "application/xhtml+xml"))


class CircuitBreakerMiddleware:
    """Turn an uncaught ``CircuitOpenError`` into HTTP 503 with ``Retry-After``.

    JSON for clients that ask for it, ``template_name`` (overridable in your templates, or on a
    subclass; styled by ``resilience/circuit_open.css``, no inline style) otherwise. The body
    never contains the exception text; the circuit name only when
    ``RESILIENCE["EXPOSE_CIRCUIT_NAME"]`` is True.
    """

    sync_capable = True
    async_capable = True
    template_name = "resilience/circuit_open.html"
    status = 503

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        # Nothing to do around the view: in async mode this returns get_response's coroutine,
        # which the handler awaits (this instance is marked as a coroutine function).
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, CircuitOpenError):
            return self.circuit_open_response(request, exception)
        return None

    def circuit_open_response(self, request: HttpRequest, exc: CircuitOpenError) -> HttpResponse:
        retry_after = retry_after_seconds(exc)
        circuit = exc.circuit if conf.EXPOSE_CIRCUIT_NAME else None
        response: HttpResponse
        if wants_json(request):
            body: dict[str, Any] = {
                "error": "service_unavailable",
                "detail": gettext(
                    "A service this page depends on is not responding. Please try again shortly."
                ),
                "retry_after": retry_after,
            }
            if circuit is not None:
                body["circuit"] = circuit
            response = JsonResponse(body, status=self.status)
        else:
            html = render_to_string(
                self.template_name,
                {"circuit": circuit, "retry_after": retry_after, "stylesheet": stylesheet_url()},
                request=request,
            )
            response = HttpResponse(html, status=self.status)
        response["Retry-After"] = str(retry_after)
        response["Cache-Control"] = "no-store"
        patch_vary_headers(response, ("Accept",))
        # Django's handler logs every 5xx at ERROR on ``django.request`` (mailed to ADMINS by
        # its default LOGGING), unless the response says it has been logged already.
        response._has_been_logged = True  # type: ignore[attr-defined]
        refusals_log.log(
            logging.WARNING,
            "resilience: request refused with 503, circuit %s is %s",
            one_line(str(exc.circuit), 200),
            exc.state,
        )
        return response
