"""The Slack channel: the alert as a message to a Slack incoming webhook."""

from __future__ import annotations

from typing import Any

from resilience import alerts
from resilience.channels.webhook import WebhookChannel
from resilience.models import AlertDelivery, CircuitEvent, EventKind
from resilience.sanitize import one_line


class SlackChannel(WebhookChannel):
    """A message to a Slack incoming webhook (``OPTIONS["webhook_url"]``, itself a secret)."""

    url_option = "webhook_url"

    def payload(self, event: CircuitEvent, delivery: AlertDelivery) -> dict[str, Any]:
        ctx = alerts.context(event)
        circuit = _mrkdwn(ctx["circuit"])
        if event.kind == EventKind.OPENED:
            head = f":red_circle: Circuit *{circuit}* opened: calls to it are being rejected."
        else:
            head = f":large_green_circle: Circuit *{circuit}* closed again: calls go through."
        lines = [head, f"Failures: {event.failure_count}"]
        if event.failure_rate is not None:
            lines.append(f"Failure rate: {event.failure_rate:.0f}%")
        if event.error:
            lines.append(f"Last error: `{_mrkdwn(one_line(event.error, 300))}`")
        if ctx["digest"]["count"]:
            lines.append(f"Openings suppressed by the cooldown: {ctx['digest']['count']}")
        if ctx["admin_url"]:
            lines.append(f"<{ctx['admin_url']}|Open in the admin>")
        text = "\n".join(lines)
        section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        return {"text": text, "blocks": [section]}

    def headers(self, body: bytes, delivery: AlertDelivery) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": "django-resilience"}


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so a name cannot inject a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
