"""TLS and ACL users work; wrong credentials mean degraded mode, and a password is never shown.

A private redis-server with a TLS port (a throw-away CA and server certificate made with openssl)
and ACL users; every call goes through ``@circuit_breaker`` with the Redis backend configured in
``RESILIENCE``, as a site would.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import traceback
from dataclasses import dataclass

import pytest
import redis as redis_py
from django.test import Client

from resilience import CircuitOpenError, circuit_breaker, events
from resilience.backends import get_backend
from resilience.models import CircuitEvent
from tests.factories import BreakerPolicyFactory, UserFactory
from tests.support.redisproc import REDIS_SERVER, RedisProcess, free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not REDIS_SERVER, reason="redis-server is not installed"),
]

PASSWORD = "Br3aker-Pa55word-q8Zx"
WRONG = "Wr0ng-Pa55word-k2Lm"


class UpstreamError(Exception):
    pass


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)  # noqa: S603,S607


def make_certificates(directory) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1 signed by it; plus an unrelated CA. With the
    key usages Python 3.13's strict verification (VERIFY_X509_STRICT, on by default) requires."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    for ca in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN={ca}",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory,
        )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1", cwd=directory,
    )  # fmt: skip
    (directory / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "ext.cnf",
        cwd=directory,
    )  # fmt: skip
    return {name: str(directory / f"{name}.crt") for name in ("ca", "other-ca", "server")}


@dataclass
class Secured:
    port: int
    tls_port: int
    certs: dict[str, str]
    admin: redis_py.Redis


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    return directory, make_certificates(directory)


@pytest.fixture
def secured(certificates):
    """A redis-server with a TLS port and ACL users limited to ``secure:*`` keys."""
    directory, certs = certificates
    tls_port = free_port()
    tls = (
        "--tls-port", str(tls_port),
        "--tls-cert-file", certs["server"],
        "--tls-key-file", str(directory / "server.key"),
        "--tls-ca-cert-file", certs["ca"],
        "--tls-auth-clients", "no",
    )  # fmt: skip
    with RedisProcess(extra_args=tls) as server:
        admin = redis_py.Redis(server.host, server.port, decode_responses=True)
        admin.acl_setuser(
            "breaker", enabled=True, passwords=[f"+{PASSWORD}"], keys=["secure:*"],
            commands=["+@all"],
        )  # fmt: skip
        admin.acl_setuser(
            "readonly", enabled=True, passwords=[f"+{PASSWORD}"], keys=["secure:*"],
            commands=["+@read", "+ping", "-evalsha", "-eval"],
        )  # fmt: skip
        yield Secured(server.port, tls_port, certs, admin)
        admin.close()


def configure(settings, url: str, **options) -> None:
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": url, "prefix": "secure", "socket_timeout": 2, **options},
        "HEALTH": {"TOKEN": "health-token-0123456789abcdef"},
    }


def trip(name: str) -> list[BaseException]:
    """Fail ``name`` until it opens; returns every exception the caller saw."""
    BreakerPolicyFactory(name=name, failure_threshold=2, recovery_timeout=60)

    @circuit_breaker(name)
    def call():
        raise UpstreamError("upstream down")

    seen: list[BaseException] = []
    for _ in range(3):
        try:
            call()
        except (UpstreamError, CircuitOpenError) as exc:
            seen.append(exc)
    assert [type(e) for e in seen] == [UpstreamError, UpstreamError, CircuitOpenError]
    assert events.flush(timeout=10)
    return seen


def test_tls_with_an_acl_user(settings, secured):
    url = f"rediss://breaker:{PASSWORD}@127.0.0.1:{secured.tls_port}/0"
    configure(settings, url, ssl_ca_certs=secured.certs["ca"])
    trip("over-tls")
    health = get_backend().health()
    assert health["degraded"] is False and PASSWORD not in str(health)
    # The state is in Redis (the URL is the TLS port only: plain RESP would have failed there).
    assert secured.admin.hget("secure:v1:{over-tls}:state", "state") == "open"
    assert CircuitEvent.objects.filter(circuit="over-tls", kind="opened").count() == 1


def test_an_untrusted_certificate_degrades_without_raising(settings, secured, caplog):
    url = f"rediss://breaker:{PASSWORD}@127.0.0.1:{secured.tls_port}/0"
    configure(settings, url, ssl_ca_certs=secured.certs["other-ca"])
    caplog.set_level(logging.DEBUG)
    trip("untrusted")  # the per-process fallback tripped it: callers never noticed
    health = get_backend().health()
    assert health["degraded"] is True and "certificate" in health["reason"].lower()
    assert secured.admin.keys("secure:*") == []
    assert PASSWORD not in str(health) + caplog.text


def test_an_acl_user_without_script_rights_degrades_without_raising(settings, secured):
    configure(settings, f"redis://readonly:{PASSWORD}@127.0.0.1:{secured.port}/0")
    trip("no-scripts")
    health = get_backend().health()
    assert health["degraded"] is True and "NOPERM" in health["reason"].upper()


@pytest.mark.urls("tests.support.site_urls")
@pytest.mark.parametrize("where", ["url", "option"])
def test_a_wrong_password_degrades_and_is_never_shown(settings, secured, caplog, where):
    if where == "url":
        configure(settings, f"redis://breaker:{WRONG}@127.0.0.1:{secured.port}/0")
    else:
        url = f"redis://127.0.0.1:{secured.port}/0"
        configure(settings, url, username="breaker", password=WRONG)
    caplog.set_level(logging.DEBUG)
    seen = trip("wrong-password")

    health = get_backend().health()
    assert health["degraded"] is True
    assert "WRONGPASS" in health["reason"].upper() or "AUTH" in health["reason"].upper()
    staff = Client()
    staff.force_login(UserFactory(username="ops", is_staff=True))
    endpoint = staff.get("/resilience/health/").content.decode()
    assert '"backend"' in endpoint  # staff see the backend's detail...
    texts = {
        "health()": str(health),
        "health endpoint": endpoint,
        "backend location": get_backend().health()["location"],
        "caller exceptions": "".join("".join(traceback.format_exception(exc)) for exc in seen),
        "events": str(list(CircuitEvent.objects.values())),
        "logs": caplog.text
        + "".join(
            "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
        ),
    }
    for where_, text in texts.items():
        assert WRONG not in text, f"the password leaked into {where_}"  # ...never the password
    assert any("wrong-password opened" in r.getMessage() for r in caplog.records)
