"""The e-mail channel: the alert e-mail through the project's default mailer."""

from __future__ import annotations

import smtplib

from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from resilience import alerts, compat
from resilience.channels.base import Channel
from resilience.models import AlertDelivery, CircuitEvent

DEFAULT_SEND_TIMEOUT = 30.0  # seconds per SMTP operation when the mailer sets no timeout


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
