"""CircuitBreakerMiddleware under WSGI and ASGI: 503, Retry-After, JSON or HTML, nothing leaked."""

import json
import logging

import pytest
from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse

from resilience.exceptions import CircuitOpenError
from resilience.middleware import CircuitBreakerMiddleware, retry_after_seconds, wants_json
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.urls("tests.support.site_urls"), pytest.mark.usefixtures("middleware")]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SECRETS = ("secret-circuit", "retry after", "CircuitOpenError", "Traceback")


def assert_private(response):
    text = response.content.decode()
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0, 1), (0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (12.2, 13), (59.5, 60), (3600, 3600)],
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(seconds, header):
    assert retry_after_seconds(CircuitOpenError("c", seconds)) == header


def test_retry_after_survives_infinite_values():
    assert retry_after_seconds(CircuitOpenError("c", float("inf"))) == 1


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        (BROWSER, False),
        ("", False),
        ("*/*", False),
        ("application/json", True),
        ("application/problem+json", True),
        ("application/json, text/html", True),
        ("text/html, application/json;q=0.9", False),
        ("text/html;q=0.1, application/json", True),
        ("application/json;q=0", False),
        ("application/json;q=bogus", False),
        ("APPLICATION/JSON; charset=utf-8", True),
    ],
)
def test_content_negotiation(rf, accept, json_wanted):
    assert wants_json(rf.get("/", headers={"accept": accept})) is json_wanted


def test_html_503_for_browsers(client):
    response = client.get("/open/", headers={"accept": BROWSER})
    assert response.status_code == 503
    assert response["Retry-After"] == "13"
    assert response["Content-Type"].startswith("text/html")
    assert response["Cache-Control"] == "no-store"
    assert "Accept" in response["Vary"]
    assert "Service temporarily unavailable" in response.content.decode()
    assert "Retry in 13 seconds." in response.content.decode()
    assert_private(response)


def test_json_503_for_api_clients(client):
    response = client.get("/open/?after=0.2", headers={"accept": "application/json"})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    body = json.loads(response.content)
    assert body == {
        "error": "service_unavailable",
        "detail": "A service this page depends on is not responding. Please try again shortly.",
        "retry_after": 1,
    }
    assert_private(response)


def test_circuit_name_only_when_configured(client, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "EXPOSE_CIRCUIT_NAME": True}
    as_json = client.get("/open/", headers={"accept": "application/json"})
    assert json.loads(as_json.content)["circuit"] == "secret-circuit"
    as_html = client.get("/open/", headers={"accept": BROWSER})
    assert "Circuit: secret-circuit" in as_html.content.decode()


def test_the_template_can_be_overridden(client, settings, tmp_path):
    (tmp_path / "resilience").mkdir()
    (tmp_path / "resilience" / "circuit_open.html").write_text(
        "<p>Our payment partner is down; back in {{ retry_after }}s. {{ circuit|default:'-' }}</p>"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    response = client.get("/open/", headers={"accept": BROWSER})
    assert response.content.decode() == "<p>Our payment partner is down; back in 13s. -</p>"


def test_other_exceptions_are_left_alone(client):
    client.raise_request_exception = False
    assert client.get("/boom/").status_code == 500


@pytest.mark.django_db(transaction=True)  # its events are written by a thread
def test_a_real_open_circuit_in_a_view(client):
    BreakerPolicyFactory(name="payments-api", mode="forced_open", recovery_timeout=42)
    response = client.get("/checkout/", headers={"accept": "application/json"})
    assert response.status_code == 503
    assert response["Retry-After"] == "42"
    assert_private(response)


def test_sync_and_async_capable():
    def sync_view(request):
        return HttpResponse()

    async def async_view(request):
        return HttpResponse()

    assert CircuitBreakerMiddleware.sync_capable and CircuitBreakerMiddleware.async_capable
    assert not iscoroutinefunction(CircuitBreakerMiddleware(sync_view))
    assert iscoroutinefunction(CircuitBreakerMiddleware(async_view))


class TestASGI:
    async def test_async_view(self, async_client):
        response = await async_client.get("/async-open/", headers={"accept": "application/json"})
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert json.loads(response.content)["retry_after"] == 5
        assert_private(response)

    async def test_sync_view_html(self, async_client):
        response = await async_client.get("/open/?after=2", headers={"accept": BROWSER})
        assert response.status_code == 503
        assert response["Retry-After"] == "2"
        assert "Retry in 2 seconds." in response.content.decode()
        assert_private(response)

    async def test_other_requests_pass_through(self, async_client, settings):
        async_client.raise_request_exception = False
        assert (await async_client.get("/boom/")).status_code == 500


# --- logging: a refusal is expected behaviour, never Django's per-request ERROR ----------------


@pytest.fixture
def fresh_refusals_log(monkeypatch):
    from resilience import middleware
    from resilience.logs import ThrottledLog

    log = ThrottledLog(logging.getLogger("resilience"), 60)
    monkeypatch.setattr(middleware, "refusals_log", log, raising=False)


def refusal_warnings(caplog):
    return [r for r in caplog.records if r.name == "resilience" and "refused" in r.getMessage()]


@pytest.mark.usefixtures("fresh_refusals_log")
def test_refusals_are_not_logged_at_error_nor_mailed_to_admins(client, default_logging, mailoutbox):
    for accept in ("application/json", BROWSER) * 5:
        assert client.get("/open/", headers={"accept": accept}).status_code == 503
    assert default_logging.request_errors() == []
    assert mailoutbox == []
    [warning] = refusal_warnings(default_logging.caplog)  # one WARNING a minute for all of them
    assert warning.levelno == logging.WARNING
    assert "secret-circuit" in warning.getMessage()
    # Control: the same configuration does mail the admins for a real server error.
    client.raise_request_exception = False
    assert client.get("/boom/").status_code == 500
    assert len(default_logging.request_errors()) == 1 and len(mailoutbox) == 1


@pytest.mark.usefixtures("fresh_refusals_log")
async def test_async_refusals_are_not_logged_at_error_nor_mailed(
    async_client, default_logging, mailoutbox
):
    for path in ("/async-open/", "/open/") * 3:
        response = await async_client.get(path, headers={"accept": "application/json"})
        assert response.status_code == 503
    assert default_logging.request_errors() == []
    assert mailoutbox == []
    assert len(refusal_warnings(default_logging.caplog)) == 1


def test_refusal_warnings_count_what_they_held_back(client, default_logging, monkeypatch):
    from resilience import middleware
    from resilience.logs import ThrottledLog

    now = [1000.0]
    throttle = ThrottledLog(logging.getLogger("resilience"), 60, clock=lambda: now[0])
    monkeypatch.setattr(middleware, "refusals_log", throttle)
    for _ in range(4):
        client.get("/open/")
    now[0] += 61
    client.get("/open/")
    messages = [r.getMessage() for r in refusal_warnings(default_logging.caplog)]
    assert len(messages) == 2
    assert messages[1].endswith("(3 similar messages suppressed)")
