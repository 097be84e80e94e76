"""Alert channels: where an alert goes (e-mail, a signed webhook, Slack); one delivery each."""

from resilience.channels.base import DEFAULT_HTTP_TIMEOUT, Channel
from resilience.channels.email import DEFAULT_SEND_TIMEOUT, EmailChannel, send_timeout
from resilience.channels.registry import ChannelConfig, check, configured, get, longest_budget
from resilience.channels.slack import SlackChannel
from resilience.channels.webhook import (
    RESPONSE_MAX,
    SIGNATURE_HEADER,
    TRANSIENT_STATUS,
    WebhookChannel,
)

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_SEND_TIMEOUT",
    "RESPONSE_MAX",
    "SIGNATURE_HEADER",
    "TRANSIENT_STATUS",
    "Channel",
    "ChannelConfig",
    "EmailChannel",
    "SlackChannel",
    "WebhookChannel",
    "check",
    "configured",
    "get",
    "longest_budget",
    "send_timeout",
]
