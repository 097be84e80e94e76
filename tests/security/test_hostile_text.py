"""Hostile text (1 MB errors, CRLF, HTML, tokens, URL passwords) is bounded, escaped, redacted.

One circuit is tripped through ``@circuit_breaker`` by an exception carrying every kind of
payload, with a hostile description and reason; then every place the text can surface is read:
the ``CircuitEvent`` row, the log records, the alert e-mail (real SMTP), every admin page and the
health JSON.
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from resilience import CircuitOpenError, breaker, circuit_breaker, events
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

URL_PASSWORD = "hunter2-url-pw"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig-abcdef123456"
API_KEY = "AKIA1234567890SECRET"
# Forms the first redaction missed (issue 12): "@" and "/" in a URL password, a key in a query
# string, an ApiKey scheme, a password in free text.
AT_SLASH_PASSWORD = "p@ss/w0rd-9"
QUERY_KEY = "k9X2mQ7vLp4R8sT1"
APIKEY_SCHEME = "VnVhQ2ZHY0JDZGJrUW0tZTVh"
FREE_TEXT_PASSWORD = "Hunter2-free"
SECRETS = (URL_PASSWORD, TOKEN, API_KEY, AT_SLASH_PASSWORD, QUERY_KEY, APIKEY_SCHEME)
SECRETS += (FREE_TEXT_PASSWORD,)
XSS = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'
PAYLOAD = (
    f"upstream said: {XSS}\r\nBcc: victim@evil.example\r\nSubject: pwned\r\n"
    f"Authorization: Bearer {TOKEN}\n"
    f"GET https://svc:{URL_PASSWORD}@api.example.com/v1?api_key={API_KEY}\n"
    f"redis://default:{AT_SLASH_PASSWORD}@cache:6379/0 geocode?key={QUERY_KEY}&q=x "
    f"Authorization: ApiKey {APIKEY_SCHEME} login failed with password {FREE_TEXT_PASSWORD}\n"
) + "A" * 1_000_000
HEALTH_TOKEN = "health-token-0123456789abcdef"


class UpstreamExploded(Exception):
    pass


@pytest.fixture
def hostile(sync_alerts, settings, caplog):
    """A tripped circuit whose error, description and reset reason are all hostile."""
    settings.RESILIENCE = {**settings.RESILIENCE, "HEALTH": {"TOKEN": HEALTH_TOKEN}}
    caplog.set_level(logging.DEBUG)
    policy = BreakerPolicyFactory(
        name="hostile", failure_threshold=2, recovery_timeout=60, description=IMG + XSS
    )

    @circuit_breaker("hostile")
    def call():
        raise UpstreamExploded(PAYLOAD)

    for _ in range(2):
        with pytest.raises(UpstreamExploded):
            call()
    with pytest.raises(CircuitOpenError):
        call()
    admin = UserFactory(username="root", is_superuser=True)
    client = Client()
    client.force_login(admin)
    # Through the admin button, so the reason also lands in the admin's own log (history page).
    reset = f"/admin/resilience/breakerpolicy/{policy.pk}/reset/"
    assert client.post(reset, {"reason": f"{IMG}\r\nBcc: x@evil.example"}).status_code == 302
    assert breaker("hostile").state == "closed"
    assert events.flush(timeout=20)
    return policy, admin


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"
    assert XSS not in text and IMG not in text, f"unescaped HTML in {where}"


def test_event_row_is_bounded_one_line_and_redacted(hostile):
    event = CircuitEvent.objects.get(circuit="hostile", kind="opened")
    assert event.error.startswith("tests.security.test_hostile_text.UpstreamExploded: ")
    assert len(event.error) <= 1000
    assert "\r" not in event.error and "\n" not in event.error
    for secret in SECRETS:
        assert secret not in event.error
    reset = CircuitEvent.objects.get(circuit="hostile", kind="reset")
    assert reset.reason.startswith(IMG)  # stored as typed; escaped where it is shown


def test_log_records_are_one_line_bounded_and_redacted(hostile, caplog):
    records = [r for r in caplog.get_records("setup") if r.name.startswith("resilience")]
    assert any("hostile opened" in r.getMessage() for r in records)
    for record in records:
        message = record.getMessage()
        assert "\n" not in message and "\r" not in message, message[:200]
        assert len(message) < 2000
        for secret in SECRETS:
            assert secret not in message


def test_alert_email_has_no_injected_headers_and_escaped_html(hostile, smtp):
    [message] = smtp.settle()
    assert message["Bcc"] is None and message["Cc"] is None
    assert message["To"] == "oncall@example.com"
    assert "\n" not in message["Subject"] and "pwned" not in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert len(text) < 20_000 and len(html) < 50_000
    for body, where in ((text, "text e-mail"), (html, "HTML e-mail")):
        for secret in SECRETS:
            assert secret not in body, f"{secret!r} leaked into the {where}"
    assert XSS not in html and "&lt;script&gt;" in html


def admin_pages(policy, event_ids) -> list[str]:
    base = "/admin/resilience/"
    pages = [
        f"{base}breakerpolicy/",
        f"{base}breakerpolicy/?q=hostile",
        f"{base}breakerpolicy/?live=broken",
        f"{base}breakerpolicy/{policy.pk}/change/",
        f"{base}breakerpolicy/{policy.pk}/history/",
        f"{base}circuitevent/",
        f"{base}circuitevent/?circuit=hostile",
        "/admin/",
    ]
    pages += [f"{base}circuitevent/{pk}/change/" for pk in event_ids]
    return pages


def test_every_admin_page_escapes_and_redacts(hostile):
    policy, admin = hostile
    client = Client()
    client.force_login(admin)
    ids = list(CircuitEvent.objects.filter(circuit="hostile").values_list("pk", flat=True))
    assert len(ids) >= 2
    for url in admin_pages(policy, ids):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), url)
    change = client.get(f"/admin/resilience/breakerpolicy/{policy.pk}/change/").content.decode()
    assert "&lt;script&gt;" in change  # the description is shown, escaped


def test_health_json_never_carries_error_text(hostile, client, settings):
    settings.ROOT_URLCONF = "tests.support.site_urls"  # mounts resilience.urls
    for headers in ({}, {"Authorization": f"Bearer {HEALTH_TOKEN}"}):
        response = client.get("/resilience/health/", headers=headers)
        assert response.status_code == 200 and response.json()["status"] == "healthy"
        text = response.content.decode()
        assert_clean(text, f"health {headers}")
        assert "UpstreamExploded" not in text
        if not headers:
            assert response.json() == {"status": "healthy"}  # anonymous: the status only
    assert "hostile" in text  # the token holder saw the circuit detail, and nothing more


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_503_bodies_carry_neither_the_error_nor_the_circuit(hostile, client, settings, accept):
    settings.ROOT_URLCONF = "tests.support.site_urls"  # /checkout/ calls the "payments-api" circuit
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "resilience.middleware.CircuitBreakerMiddleware"]
    breaker("payments-api").force_open(reason=PAYLOAD[:400])
    response = client.get("/checkout/", headers={"Accept": accept})
    assert response.status_code == 503 and int(response["Retry-After"]) >= 0
    text = response.content.decode()
    assert_clean(text, f"503 body ({accept})")
    assert "payments-api" not in text and "Bcc" not in text
