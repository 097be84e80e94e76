"""Alert channels: where an alert goes (e-mail, a signed webhook, Slack); one delivery each."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.utils.module_loading import import_string

from resilience import alerts, compat
from resilience.conf import settings as conf
from resilience.models import AlertDelivery, CircuitEvent, EventKind
from resilience.rules import Problem, number, show
from resilience.sanitize import describe_error, one_line

DEFAULT_SEND_TIMEOUT = 30.0  # seconds per SMTP operation when the mailer sets no timeout
DEFAULT_HTTP_TIMEOUT = 10.0  # seconds per socket operation of a webhook POST
RESPONSE_MAX = 64 * 1024  # bytes of a webhook's answer read (and thrown away)
SIGNATURE_HEADER = "X-Resilience-Signature"
# HTTP answers worth trying again: timeouts, rate limits and the server's own trouble.
TRANSIENT_STATUS = frozenset({408, 425, 429})


class Channel:
    """One destination of alerts. Subclasses implement ``send``; every method has a default.

    ``name`` is the channel's key on its ``AlertDelivery`` rows; ``options`` its ``OPTIONS``.
    A channel never puts a secret (a webhook URL, a signing key) into an error text: that text
    is logged and shown in the admin.
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        problems = [p for p in self.check_options(options) if not p.warning]
        if problems:
            raise ImproperlyConfigured(f"alert channel {name!r}: {problems[0].message}")
        self.name = name
        self.options = options

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[Problem]:
        """What is wrong with ``options`` (the system checks report each problem)."""
        if "cooldown_seconds" not in options:
            return []
        return number(
            "ALERTS.CHANNELS.cooldown",
            "A channel's OPTIONS['cooldown_seconds']",
            options["cooldown_seconds"],
            0,
            7 * 86_400,
            integer=True,
            hint="Seconds between two opening alerts of one circuit on this channel.",
        )

    def budget(self) -> float:
        """Seconds one send may take at most (a task's time limit, a claim's lifetime)."""
        return 3 * DEFAULT_HTTP_TIMEOUT

    def send(self, event: CircuitEvent, delivery: AlertDelivery) -> None:
        """Deliver the alert of ``event``; raise on failure (``is_transient`` classifies it)."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """True when a later attempt may succeed. Celery's soft time limit (a hung server) is
        matched by name so Celery stays optional."""
        return type(exc).__name__ == "SoftTimeLimitExceeded"

    def expected(self, exc: BaseException) -> bool:
        """True when the destination refused or failed (logged without a traceback), False
        when the failure looks like a bug."""
        return isinstance(exc, alerts.NoRecipients)

    def describe(self, exc: BaseException) -> str:
        """A one-line, secret-free description of a failure (stored, logged, shown)."""
        return describe_error(exc)


class EmailChannel(Channel):
    """The alert e-mail to the policy's recipients (``ALERTS["RECIPIENTS"]``, then ``ADMINS``)."""

    def budget(self) -> float:
        """Connect, DATA and QUIT, each bounded by the mailer's timeout (``send_timeout``)."""
        return 3 * send_timeout()

    def send(self, event: CircuitEvent, delivery: AlertDelivery) -> None:
        message = alerts.build_message(event)
        # The project's default mailer hands the message over (Django 6.1 deprecates both
        # get_connection() and EmailMessage.connection, see compat.default_mailer); an SMTP
        # mailer without a timeout gets one, so a hung server cannot hold the sender forever.
        mailer = compat.default_mailer()
        if isinstance(mailer, SMTPBackend) and mailer.timeout is None:
            mailer.timeout = DEFAULT_SEND_TIMEOUT
        mailer.send_messages([message])

    def is_transient(self, exc: BaseException) -> bool:
        """SMTP 4xx, lost connections and timeouts may pass; 5xx and everything else will not."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return all(code < 500 for code, _msg in exc.recipients.values())
        if isinstance(exc, smtplib.SMTPResponseException):
            return exc.smtp_code < 500
        return isinstance(exc, smtplib.SMTPException | OSError) or super().is_transient(exc)

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, smtplib.SMTPException) or super().expected(exc)


def send_timeout() -> float:
    """Seconds per SMTP operation: the default SMTP mailer's ``timeout`` (``EMAIL_TIMEOUT``, or
    the ``timeout`` option of ``MAILERS["default"]`` on Django 6.1+), else
    ``DEFAULT_SEND_TIMEOUT``. A mailer that cannot be built gets the default here; its sends
    fail and say why."""
    try:
        mailer = compat.default_mailer()
    except (ImportError, ValueError, ImproperlyConfigured):
        return DEFAULT_SEND_TIMEOUT
    timeout = mailer.timeout if isinstance(mailer, SMTPBackend) else None
    return float(timeout or DEFAULT_SEND_TIMEOUT)


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


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelConfig:
    """One entry of ``ALERTS["CHANNELS"]`` with the name its deliveries are stored under."""

    name: str
    backend: str
    options: dict[str, Any]

    @property
    def cooldown_seconds(self) -> int:
        """``OPTIONS["cooldown_seconds"]``; 0 when unset or invalid (the checks report it)."""
        value = self.options.get("cooldown_seconds")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    def build(self) -> Channel:
        """The channel instance; ``ImproperlyConfigured`` when it cannot be imported or built."""
        try:
            channel_class = import_string(self.backend)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"alert channel {self.name!r}: BACKEND {self.backend!r} cannot be imported"
            ) from exc
        if not (isinstance(channel_class, type) and issubclass(channel_class, Channel)):
            raise ImproperlyConfigured(
                f"alert channel {self.name!r}: {self.backend!r} is not a "
                "resilience.channels.Channel"
            )
        return channel_class(self.name, self.options)


def _default_name(backend: str) -> str:
    tail = backend.rsplit(".", 1)[-1]
    if tail.endswith("Channel") and tail != "Channel":
        tail = tail[: -len("Channel")]
    return tail.lower()[:40] or "channel"


def configured() -> list[ChannelConfig]:
    """The channels of ``ALERTS["CHANNELS"]`` (entries that are not dicts are skipped: the
    system checks report them). Names: ``NAME`` if given, else from the class (``email``,
    ``webhook``, ``slack``), numbered from the second of a kind on (``webhook-2``)."""
    entries = conf.ALERTS.get("CHANNELS")
    if not isinstance(entries, list | tuple):
        entries = []
    seen: Counter[str] = Counter()
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        backend = str(entry.get("BACKEND", ""))
        name = str(entry.get("NAME") or _default_name(backend))[:40]
        seen[name] += 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        options = entry.get("OPTIONS") or {}
        found.append(ChannelConfig(name, backend, options if isinstance(options, dict) else {}))
    return found


def get(name: str) -> Channel:
    """The configured channel called ``name``; ``ImproperlyConfigured`` if none is (now)."""
    for config in configured():
        if config.name == name:
            return config.build()
    raise ImproperlyConfigured(f"alert channel {name!r} is not in ALERTS['CHANNELS'] any more")


def longest_budget() -> float:
    """The longest ``budget()`` of the channels that build (at least the e-mail one's)."""
    budgets = [3 * send_timeout()]
    for config in configured():
        try:
            budgets.append(config.build().budget())
        except ImproperlyConfigured:
            continue  # reported by the checks; its deliveries fail
    return max(budgets)


def check(value: Any) -> list[Problem]:
    """Every problem of an ``ALERTS["CHANNELS"]`` value (for ``manage.py check``)."""
    hint = "A list of {'BACKEND': 'resilience.channels.WebhookChannel', 'OPTIONS': {...}}."
    if not isinstance(value, list | tuple):
        message = f"ALERTS['CHANNELS'] must be a list, not {show(value)}."
        return [Problem("ALERTS.CHANNELS", message, hint)]
    found = []
    for index, entry in enumerate(value):
        label = f"ALERTS['CHANNELS'][{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("OPTIONS", {}), dict):
            found.append(
                Problem("ALERTS.CHANNELS", f"{label} must be a dict with a dict OPTIONS.", hint)
            )
            continue
        unknown = sorted(str(k) for k in set(entry) - {"BACKEND", "OPTIONS", "NAME"})
        if unknown:
            found.append(
                Problem(
                    "ALERTS.CHANNELS.keys",
                    f"{label} has unknown keys: {', '.join(unknown)}.",
                    "Valid keys: BACKEND, OPTIONS, NAME.",
                )
            )
        backend = entry.get("BACKEND")
        try:
            channel_class = import_string(backend) if isinstance(backend, str) else None
        except ImportError:
            channel_class = None
        if not (isinstance(channel_class, type) and issubclass(channel_class, Channel)):
            found.append(
                Problem(
                    "ALERTS.CHANNELS.backend",
                    f"{label}['BACKEND'] {show(backend)} is not an importable "
                    "resilience.channels.Channel subclass.",
                    "Use resilience.channels.EmailChannel, WebhookChannel or SlackChannel, "
                    "or a subclass of resilience.channels.Channel.",
                )
            )
            continue
        found += [
            Problem(p.code, f"{label}: {p.message}", p.hint, p.warning)
            for p in channel_class.check_options(entry.get("OPTIONS", {}))
        ]
    return found
