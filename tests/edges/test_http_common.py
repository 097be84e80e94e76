"""Circuit names per host and Retry-After parsing, shared by the requests and httpx integrations."""

import time
from email.utils import formatdate

import pytest

from resilience.contrib._http import host_circuit, parse_retry_after
from resilience.validators import CIRCUIT_NAME_RE


@pytest.mark.parametrize(
    ("scheme", "host", "port", "expected"),
    [
        ("https", "API.Example.com", 443, "http:api.example.com"),
        ("https", "api.example.com", None, "http:api.example.com"),
        ("http", "api.example.com", 80, "http:api.example.com"),
        ("http", "api.example.com", 8080, "http:api.example.com:8080"),
        ("https", "api.example.com", 80, "http:api.example.com:80"),
        ("http", "[::1]", 8000, "http:::1:8000"),
        ("http", "xn--bcher-kva.example.", None, "http:xn--bcher-kva.example"),
    ],
)
def test_host_circuit_names(scheme, host, port, expected):
    assert host_circuit(scheme, host, port) == expected


@pytest.mark.parametrize(
    "host",
    ["evil{tag}*host", "a b\r\nX-Injected: 1", "bücher.example", "x" * 300, "", "%00", "_", "-"],
)
def test_hostile_hosts_still_give_valid_distinct_names(host):
    name = host_circuit("http", host, None)
    assert CIRCUIT_NAME_RE.fullmatch(name)
    assert name.startswith("http:")
    assert name != host_circuit("http", host + "x", None)


def test_sanitised_names_do_not_collide():
    assert host_circuit("http", "a*b", None) != host_circuit("http", "a{b", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("99999999", 86400.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Mon, 99 Foo 2024 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_dates():
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
