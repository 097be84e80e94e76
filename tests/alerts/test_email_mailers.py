"""The alert e-mail on each Django's mail API (real SMTP): ``mail.get_connection()`` and the
``EMAIL_*`` settings before Django 6.1, ``mail.mailers`` there (``MAILERS``, or ``EMAIL_*``
while a project has not moved); no deprecation warning from the package on any of them."""

import django
import pytest

from resilience import channels, delivery
from resilience.compat import default_mailer
from tests.alerts.helpers import open_circuit, pending_delivery
from tests.factories import BreakerPolicyFactory
from tests.support.deprecations import package_deprecations

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_alerts")]

SMTP = "django.core.mail.backends.smtp.EmailBackend"
needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is new in Django 6.1")


def send_one_alert(smtp):
    """Open a circuit and send its alert e-mail here; the deprecations the package caused."""
    BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    row = pending_delivery("pay")
    with package_deprecations() as found:
        outcome = delivery.deliver(row.pk)
        timeout = channels.send_timeout()
    assert outcome == delivery.SENT
    [message] = smtp.settle(quiet=0.3)
    assert message["Subject"] == "[resilience] Circuit opened: pay"
    return found, timeout


def test_the_email_settings_carry_the_alert(smtp, settings):
    """EMAIL_BACKEND, EMAIL_HOST, ..., EMAIL_TIMEOUT: every supported Django (6.1 deprecates them
    for the project, but builds its default mailer from them)."""
    settings.EMAIL_TIMEOUT = 4
    found, timeout = send_one_alert(smtp)
    assert found == []
    assert timeout == 4.0


@needs_mailers
def test_the_default_mailer_carries_the_alert(smtp, settings):
    settings.MAILERS = {
        "default": {
            "BACKEND": SMTP,
            "OPTIONS": {"host": smtp.host, "port": smtp.port, "timeout": 3},
        }
    }
    found, timeout = send_one_alert(smtp)
    assert found == []
    assert timeout == 3.0  # the mailer's own option: no EMAIL_TIMEOUT is read


@needs_mailers
def test_a_default_mailer_without_a_timeout_gets_one(smtp, settings):
    settings.MAILERS = {
        "default": {"BACKEND": SMTP, "OPTIONS": {"host": smtp.host, "port": smtp.port}}
    }
    assert default_mailer().timeout is None
    found, timeout = send_one_alert(smtp)
    assert found == []
    assert timeout == channels.DEFAULT_SEND_TIMEOUT


@needs_mailers
def test_a_mailer_that_cannot_be_built_fails_the_delivery_clearly(smtp, settings):
    settings.MAILERS = {"default": {"BACKEND": SMTP, "OPTIONS": {"port": smtp.port}}}  # no host
    BreakerPolicyFactory(name="pay", failure_threshold=3, alert_on_open=False)
    open_circuit("pay")
    row = pending_delivery("pay")
    assert channels.send_timeout() == channels.DEFAULT_SEND_TIMEOUT  # the budget still has one
    assert delivery.deliver(row.pk) == delivery.FAILED
    row.refresh_from_db()
    assert "InvalidMailer" in row.last_error and "host" in row.last_error
    assert smtp.settle(quiet=0.3) == []
