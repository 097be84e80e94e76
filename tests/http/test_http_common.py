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
        ("HTTPS", "api.example.com", 443, "http:api.example.com"),
        ("http", "xn--bcher-kva.example.", None, "http:xn--bcher-kva.example"),
        ("http", "Example.COM..", 80, "http:example.com"),
        # IPv4 in every form the resolver (inet_aton) accepts: one name per address
        ("http", "127.0.0.1", None, "http:127.0.0.1"),
        ("http", "127.1", None, "http:127.0.0.1"),
        ("http", "127.0.1", 80, "http:127.0.0.1"),
        ("http", "2130706433", None, "http:127.0.0.1"),
        ("http", "0x7f.0.0.1", None, "http:127.0.0.1"),
        ("http", "0X7F000001", None, "http:127.0.0.1"),
        ("http", "0177.0.0.1", 8080, "http:127.0.0.1:8080"),
        ("http", "010.0.0.5", None, "http:8.0.0.5"),  # octal, as the resolver reads it
        # IPv6: compressed, lower-case; IPv4-mapped is the IPv4 address; a port after "."
        ("http", "[::1]", None, "http:::1"),
        ("http", "[0:0:0:0:0:0:0:1]", 80, "http:::1"),
        ("http", "2001:DB8:0:0::1", None, "http:2001:db8::1"),
        ("http", "[::ffff:127.0.0.1]", 8000, "http:127.0.0.1:8000"),
        ("http", "[::1]", 8000, "http:::1.8000"),
    ],
)
def test_host_circuit_names(scheme, host, port, expected):
    assert host_circuit(scheme, host, port) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # an IPv6 address with a port is not another address without one
        (("http", "[::1]", 8000), ("http", "[::1:8000]", None)),
        # not addresses to the resolver: they must not share (or trip) 127.0.0.1's circuit
        (("http", "127.0.0.1.", None), ("http", "127.0.0.1", None)),
        (("http", "1.2.3.4.5", None), ("http", "1.2.3.4", None)),
        (("http", "256.0.0.1", None), ("http", "0.0.1.0", None)),
        (("http", "%31%32%37.0.0.1", None), ("http", "127.0.0.1", None)),
        # a name is not an address
        (("http", "localhost", None), ("http", "127.0.0.1", None)),
    ],
)
def test_different_hosts_keep_different_names(first, second):
    assert host_circuit(*first) != host_circuit(*second)


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


def test_max_hosts_holds_under_concurrent_first_requests(monkeypatch):
    """Threads asking for new hosts at once, through adapters of their own, never make more
    than ``max_hosts`` breakers in the process, nor two for one host (the breaker is made
    slowly here, to widen any race)."""
    import threading

    from resilience.contrib import _http
    from resilience.contrib.requests import CircuitBreakerAdapter

    real = _http.Breaker

    def slow_breaker(*args, **kwargs):
        time.sleep(0.02)
        return real(*args, **kwargs)

    monkeypatch.setattr(_http, "Breaker", slow_breaker)
    start = threading.Barrier(16)
    got = []

    def first_request(host):
        adapter = CircuitBreakerAdapter(max_hosts=2)
        start.wait()
        got.append((host, adapter._protected(host, False)))

    threads = [threading.Thread(target=first_request, args=(f"http:h{i % 4}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    protected = {host: wrapped for host, wrapped in got if wrapped is not None}
    assert len(_http.circuits.hosts) == 2 == len(protected)
    assert all(wrapped is protected[host] for host, wrapped in got if host in protected)


def test_retry_after_of_a_host_past_max_hosts_is_not_remembered():
    from resilience.contrib._http import hints
    from resilience.contrib.requests import CircuitBreakerAdapter

    adapter = CircuitBreakerAdapter(max_hosts=1)
    assert adapter._protected("http:kept", False) is not None
    assert adapter._protected("http:other", False) is None  # past max_hosts: unprotected
    for name in ("http:kept", "http:other"):
        adapter._outcome_error(name, "GET", 429, "120", None)
    assert hints.remaining("http:kept") > 100
    assert hints.remaining("http:other") == 0  # outside URLs cannot fill this process-wide map
