"""``health/`` (JSON) and ``metrics/`` (Prometheus text) for load balancers and monitoring."""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from resilience import metrics
from resilience.conf import settings as conf
from resilience.prometheus import exposition


def has_monitoring_access(request: HttpRequest) -> bool:
    """Active staff, or ``Authorization: Bearer <HEALTH["TOKEN"]>`` (compared in constant time)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = conf.HEALTH.get("TOKEN")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), str(token).encode())


def _private(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("Authorization", "Cookie"))
    return response


@require_safe
@never_cache
def health(request: HttpRequest) -> HttpResponse:
    """``{"status": "healthy"|"degraded"}``: 200, or ``HEALTH["CRITICAL_STATUS"]`` when degraded.

    Degraded: a ``critical`` circuit is not closed, or the backend or the database is down. Staff
    and bearer-token clients also get the backend and every circuit; nobody gets secrets.
    """
    view = metrics.overview()
    body: dict = {"status": "healthy" if view.healthy else "degraded"}
    if has_monitoring_access(request):
        body.update(
            database=view.database,
            backend=view.backend,
            critical_down=view.critical_down,
            circuits=view.circuits,
        )
    status = 200 if view.healthy else conf.HEALTH["CRITICAL_STATUS"]
    response = JsonResponse(body, status=status)
    # "Degraded" is an answer, not a server error: without this Django logs every probe of a
    # load balancer at ERROR on ``django.request`` (mailed to ADMINS by its default LOGGING).
    # What made it degraded is logged once where it happened (transition, backend outage).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return _private(response)


@require_safe
@never_cache
def prometheus(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (text, or OpenMetrics when the scraper asks for it); staff or
    bearer token only (it names every circuit)."""
    if not has_monitoring_access(request):
        return _private(HttpResponse("Forbidden\n", status=403, content_type="text/plain"))
    body, content_type = exposition(request.headers.get("Accept", ""))
    return _private(HttpResponse(body, content_type=content_type))
