"""A protected stream is refused before its first byte: an open circuit gives 503 with
Retry-After, not 200 and an empty body, under WSGI (Django's client, wsgiref) and ASGI (uvicorn)."""

import httpx
import pytest

from resilience import breaker, circuit_breaker
from tests.support.webservers import asgi_server, wsgi_server

pytestmark = pytest.mark.urls("tests.http.stream_urls")
JSON = {"accept": "application/json"}
ROWS = "row 0\nrow 1\nrow 2\n"
CHUNKS = "chunk 0\nchunk 1\nchunk 2\n"


@pytest.fixture(autouse=True)
def _streams(breaker_db, middleware, settings):
    # From settings: the async view reads no policy row from the event loop.
    policy = {"failure_threshold": 1, "recovery_timeout": 30}
    settings.RESILIENCE = {**settings.RESILIENCE, "POLICIES": {"feed": policy, "afeed": policy}}


def trip(name):
    @circuit_breaker(name)
    def upstream_down():
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        upstream_down()
    assert breaker(name).state == "open"


def assert_refused(response):
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "service_unavailable"


def test_an_open_circuit_gives_503_through_the_django_client(client):
    trip("feed")
    response = client.get("/feed/", headers=JSON)
    assert response.status_code == 503
    assert response["Retry-After"] == "30"


def test_a_sync_stream_under_a_real_wsgi_server(clock, outcomes):
    with wsgi_server() as base, httpx.Client(base_url=base, timeout=10) as http:
        response = http.get("/feed/")
        assert (response.status_code, response.text) == (200, ROWS)
        assert outcomes("feed")["success"] == 1  # judged when the server exhausted the stream
        trip("feed")
        assert_refused(http.get("/feed/", headers=JSON))
        clock.advance(30)
        response = http.get("/feed/")  # the half-open trial: the whole stream, then closed
        assert (response.status_code, response.text) == (200, ROWS)
    assert breaker("feed").state == "closed"
    assert outcomes("feed")["rejected"] == 1


def test_an_async_stream_under_a_real_uvicorn_server(clock, outcomes, caplog):
    with asgi_server() as base, httpx.Client(base_url=base, timeout=10) as http:
        response = http.get("/afeed/")
        assert (response.status_code, response.text) == (200, CHUNKS)
        trip("afeed")
        assert_refused(http.get("/afeed/", headers=JSON))
        clock.advance(30)
        response = http.get("/afeed/")
        assert (response.status_code, response.text) == (200, CHUNKS)
    assert breaker("afeed").state == "closed"
    assert outcomes("afeed")["rejected"] == 1
    assert "Exception in ASGI application" not in caplog.text
