"""The webhook channel: the alert as a JSON POST, signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from resilience import alerts
from resilience.channels.base import DEFAULT_HTTP_TIMEOUT, Channel
from resilience.models import AlertDelivery, CircuitEvent
from resilience.rules import Problem, number
from resilience.sanitize import describe_error, one_line

RESPONSE_MAX = 64 * 1024  # bytes of a webhook's answer read (and thrown away)
SIGNATURE_HEADER = "X-Resilience-Signature"
# HTTP answers worth trying again: timeouts, rate limits and the server's own trouble.
TRANSIENT_STATUS = frozenset({408, 425, 429})


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would go somewhere nobody configured (and urllib would turn it into a
    # GET): the 3xx answer is the outcome.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class WebhookChannel(Channel):
    """A JSON POST to ``OPTIONS["url"]``, signed with ``OPTIONS["secret"]`` when one is set.

    The ``X-Resilience-Signature`` header is ``sha256=`` + the hex HMAC-SHA256 of the exact body
    bytes under the secret; ``X-Resilience-Delivery`` is the same for every attempt of one
    delivery (receivers drop a repeat by it).
    """

    url_option = "url"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[Problem]:
        found = super().check_options(options)
        url = options.get(cls.url_option)
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            # The value itself is not shown: a webhook URL often is the credential.
            found.append(
                Problem(
                    "ALERTS.CHANNELS.url",
                    f"OPTIONS[{cls.url_option!r}] of a {cls.__name__} must be an absolute "
                    f"http:// or https:// URL (the value is not shown: it may hold a secret).",
                    "e.g. 'https://hooks.example.com/resilience'.",
                )
            )
        secret = options.get("secret")
        if secret is not None and not (isinstance(secret, str | bytes) and secret):
            found.append(
                Problem(
                    "ALERTS.CHANNELS.secret",
                    "OPTIONS['secret'] of a webhook channel must be a non-empty string or None.",
                    "The receiver checks the X-Resilience-Signature header with it.",
                )
            )
        if "timeout" in options:
            found += number(
                "ALERTS.CHANNELS.timeout",
                "A webhook channel's OPTIONS['timeout']",
                options["timeout"],
                0,
                300,
                low_open=True,
                hint=f"Seconds per socket operation; the default is {DEFAULT_HTTP_TIMEOUT:g}.",
            )
        return found

    @property
    def url(self) -> str:
        return str(self.options[self.url_option])

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout") or DEFAULT_HTTP_TIMEOUT)

    def budget(self) -> float:
        """Connect, send and read the answer, each bounded by the timeout."""
        return 3 * self.timeout

    def payload(self, event: CircuitEvent, delivery: AlertDelivery) -> dict[str, Any]:
        ctx = alerts.context(event)
        trial = ctx["trial"]
        return {
            "type": f"circuit.{event.kind}",
            "event_id": event.pk,
            "delivery_id": delivery.pk,
            "circuit": ctx["circuit"],
            "kind": event.kind,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "failure_count": event.failure_count,
            "failure_rate": event.failure_rate,
            "error": event.error,  # redacted when the event was recorded
            "created_at": event.created_at.isoformat(),
            "trial_at": trial["at"].isoformat() if trial else None,
            "origin": event.origin,
            "admin_url": ctx["admin_url"],
            "suppressed_openings": ctx["digest"]["count"],
        }

    def headers(self, body: bytes, delivery: AlertDelivery) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "django-resilience",
            "X-Resilience-Delivery": str(delivery.pk),
        }
        secret = self.options.get("secret")
        if secret:
            key = secret.encode() if isinstance(secret, str) else secret
            digest = hmac.new(key, body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        return headers

    def send(self, event: CircuitEvent, delivery: AlertDelivery) -> None:
        body = json.dumps(self.payload(event, delivery), separators=(",", ":")).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked: http(s) only
            self.url, data=body, headers=self.headers(body, delivery), method="POST"
        )
        with _opener.open(request, timeout=self.timeout) as response:
            response.read(RESPONSE_MAX)

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, urllib.error.HTTPError):
            return exc.code in TRANSIENT_STATUS or exc.code >= 500
        return isinstance(exc, OSError) or super().is_transient(exc)  # URLError, timeouts

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError) or super().expected(exc)

    def describe(self, exc: BaseException) -> str:
        """The status or the kind of network failure; never the URL."""
        if isinstance(exc, urllib.error.HTTPError):
            return f"HTTP {exc.code} {one_line(str(exc.reason), 80)}".strip()
        if isinstance(exc, urllib.error.URLError):
            exc = exc.reason if isinstance(exc.reason, BaseException) else exc
        return describe_error(exc, secrets=[self.url, str(self.options.get("secret") or "")])
