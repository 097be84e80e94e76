"""Stored, logged and mailed error text: bounded, one line, obvious secrets redacted."""

import pytest

from resilience.sanitize import ERROR_MAX_CHARS, describe_error, is_sensitive, one_line, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.J9-x_y", "Authorization: Bearer [redacted]"),
        ("header Basic dXNlcjpwYXNz", "header Basic [redacted]"),
        (
            "redis://default:s3cret@cache:6379/0 refused",
            "redis://default:[redacted]@cache:6379/0 refused",
        ),
        ("postgres://:pw@db/app", "postgres://:[redacted]@db/app"),
        ("GET /pay?api_key=abc123&amount=5", "GET /pay?api_key=[redacted]&amount=5"),
        ("login(password='hunter2', user='bob')", "login(password=[redacted], user='bob')"),
        ('{"client_secret": "xyz", "id": 7}', '{"client_secret": [redacted], "id": 7}'),
        ("access_token: abc.def rejected", "access_token: [redacted] rejected"),
        ("author: Bob; Token has expired", "author: Bob; Token has expired"),
        (
            "https://api.example.com/v1/charge timed out",
            "https://api.example.com/v1/charge timed out",
        ),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_one_line_collapses_control_characters_and_bounds_length():
    assert one_line("a\r\nb\tc\x00d\x1b[31m\u2028e  f") == "a b c d [31m e f"
    assert one_line("x" * 50, limit=10) == "x" * 9 + "…"


def test_describe_error():
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("broken __str__")

    assert describe_error(None) == ""
    assert describe_error(ValueError("bad\nvalue password=pw")) == (
        "ValueError: bad value password=[redacted]"
    )
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(Weird()).endswith("Weird: <unprintable message>")
    assert len(describe_error(RuntimeError("x" * 10_000))) == ERROR_MAX_CHARS
    assert (
        describe_error(RuntimeError("Bearer " + "t" * 10_000)) == "RuntimeError: Bearer [redacted]"
    )


# --- real-world error messages ------------------------------------------------------------------
# Written as the libraries print them. Each case: the message, the secrets that must be gone, and
# text that must survive (redaction must not destroy the diagnosis).

REAL_WORLD = {
    # requests / urllib3
    "requests-max-retries-query-key": (
        "HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded with url: "
        "/v1/charges?amount=500&api_key=k9X2mQ7vLp4R8sT1 (Caused by NewConnectionError("
        "'<urllib3.connection.HTTPSConnection object at 0x7f3a2c1d5e80>: Failed to establish a "
        "new connection: [Errno 111] Connection refused'))",
        ["k9X2mQ7vLp4R8sT1"],
        [
            "host='api.example.com'",
            "/v1/charges?amount=500&api_key=",
            "[Errno 111] Connection refused",
        ],
    ),
    "requests-http-error-userinfo-at": (
        "401 Client Error: Unauthorized for url: "
        "https://deploy:p@ss@w0rd@registry.example.com/v2/_catalog?n=100",
        ["p@ss@w0rd", "ss@w0rd"],
        ["401 Client Error: Unauthorized", "registry.example.com/v2/_catalog?n=100"],
    ),
    "requests-proxy-password": (
        "HTTPSConnectionPool(host='pay.example.com', port=443): Max retries exceeded with url: / "
        "(Caused by ProxyError('Unable to connect to proxy', OSError('Tunnel connection failed: "
        "407 Proxy Authentication Required'))) via http://squid:Pr0xy-Pa55@10.0.0.7:3128",
        ["Pr0xy-Pa55"],
        ["407 Proxy Authentication Required", "10.0.0.7:3128"],
    ),
    "requests-headers-dump": (
        "403 Forbidden; request headers {'User-Agent': 'python-requests/2.31.0', "
        "'Accept-Encoding': 'gzip, deflate', 'Accept': '*/*', 'Connection': 'keep-alive', "
        "'Authorization': 'Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b', 'X-Api-Key': "
        "'a1b2c3d4e5f6'}",
        ["9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "a1b2c3d4e5f6"],
        ["403 Forbidden", "'Authorization': 'Token [redacted]'", "python-requests/2.31.0"],
    ),
    # httpx
    "httpx-status-error-token-param": (
        "Client error '401 Unauthorized' for url "
        "'https://api.example.com/v1/me?access_token=ya29.a0AfH6SMBxQ-3kLp&fields=id'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401",
        ["ya29.a0AfH6SMBxQ-3kLp"],
        ["401 Unauthorized", "fields=id", "Status/401"],
    ),
    "httpx-url-password-slash": (
        "Invalid port: 'pa' for url 'https://svc:pa/ss+w0rd@internal.example.com/api/v1'",
        ["ss+w0rd", "pa/ss"],
        ["internal.example.com/api/v1"],
    ),
    "httpx-apikey-scheme": (
        "Server error '503 Service Unavailable' for url 'https://search.example.com/_search'; "
        "sent Authorization: ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
        ["VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="],
        ["503 Service Unavailable", "Authorization: ApiKey [redacted]"],
    ),
    "httpx-digest": (
        'Authorization: Digest username="ops", realm="api@example.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'uri="/status", response="6629fae49393a05397450978507c4ef1"\nHTTP 401',
        ["6629fae49393a05397450978507c4ef1", "dcd98b7102dd2f0e8b11d0f600bfb0c093"],
        ["Authorization: Digest [redacted]", "HTTP 401"],
    ),
    # redis-py
    "redis-connection-url": (
        "Error 111 connecting to cache.internal:6379. Connection refused. "
        "(url redis://default:S3cr3t/Pa@ss@cache.internal:6379/0)",
        ["S3cr3t", "Pa@ss"],
        ["Error 111 connecting to cache.internal:6379", "cache.internal:6379/0"],
    ),
    "redis-wrongpass": (
        "WRONGPASS invalid username-password pair or user is disabled.",
        [],
        ["WRONGPASS invalid username-password pair or user is disabled."],
    ),
    "redis-auth-without-password": (
        "AUTH <password> called without any password configured for the default user. Are you "
        "sure your configuration is correct?",
        [],
        ["called without any password configured for the default user"],
    ),
    "redis-sentinel-kwargs": (
        "No master found for 'mymaster' : {'password': 'sentinel-Pa55', 'socket_timeout': 0.1}",
        ["sentinel-Pa55"],
        ["No master found for 'mymaster'", "'socket_timeout': 0.1"],
    ),
    # psycopg / libpq
    "psycopg-password-auth-failed": (
        'connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  '
        'password authentication failed for user "app"',
        [],
        ['password authentication failed for user "app"', 'server at "10.0.0.5", port 5432'],
    ),
    "psycopg-dsn": (
        'invalid connection option "sslmod" in dsn \'host=db.internal port=5432 dbname=shop '
        "user=shop password=Tr0ub4dor&3 sslmod=require'",
        ["Tr0ub4dor", "&3"],
        ['invalid connection option "sslmod"', "host=db.internal port=5432", "sslmod=require"],
    ),
    "psycopg-url": (
        'connection to server failed: could not translate host name "db" to address '
        "(postgresql://shop:c0rrect/h0rse@db:5432/shop?sslmode=require)",
        ["c0rrect", "h0rse"],
        ["could not translate host name", "db:5432/shop?sslmode=require"],
    ),
    "psycopg-unique-violation": (
        'duplicate key value violates unique constraint "users_email_key"\nDETAIL:  Key '
        "(email)=(bob@example.com) already exists.",
        [],
        ["Key (email)=(bob@example.com) already exists", "users_email_key"],
    ),
    # boto-style (AWS SDKs)
    "boto-signature-mismatch": (
        "An error occurred (SignatureDoesNotMatch) when calling the GetObject operation: The "
        "request signature we calculated does not match the signature you provided. Check your "
        "key and signing method.",
        [],
        ["The request signature we calculated does not match the signature you provided"],
    ),
    "boto-presigned-url": (
        "403 for https://bucket.s3.amazonaws.com/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20240524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Security-Token=FwoGZXIvYXdzEJr//////////wEaDOr4"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        ["AKIAIOSFODNN7EXAMPLE", "aeeed9bbccd4d02ee5c0", "FwoGZXIvYXdzEJr"],
        ["X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Expires=86400", "report.csv"],
    ),
    "boto-authorization-header": (
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240524/us-east-1/s3/"
        "aws4_request, SignedHeaders=host;range;x-amz-date, Signature="
        "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
        ["AKIAIOSFODNN7EXAMPLE", "fe5f80f77d5fa3beca038a"],
        ["AWS4-HMAC-SHA256", "SignedHeaders=host;range;x-amz-date"],
    ),
    "boto-config-dump": (
        "Unable to locate credentials: aws_access_key_id=AKIAIOSFODNN7EXAMPLE "
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY region=eu-west-1",
        ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        ["Unable to locate credentials", "region=eu-west-1"],
    ),
    "boto-partial-credentials": (
        "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY",
        [],
        ["Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY"],
    ),
    # Stripe-style SDKs
    "stripe-invalid-key": (
        "Request req_8Jm4Ckl1yLkbBx: Invalid API Key provided: sk_live_51H8b2cKz9XyQ2wE7rT",
        ["51H8b2cKz9XyQ2wE7rT"],
        ["Request req_8Jm4Ckl1yLkbBx: Invalid API Key provided: sk_live_"],
    ),
    "stripe-json-body": (
        '{"error": {"code": "api_key_expired", "message": "Expired API Key provided: '
        'rk_test_26PHem9AhJZvU623DfE1x4sd", "type": "invalid_request_error"}}',
        ["26PHem9AhJZvU623DfE1x4sd"],
        ['"code": "api_key_expired"', '"type": "invalid_request_error"'],
    ),
    "stripe-webhook-signature": (
        "No signatures found matching the expected signature for payload; Stripe-Signature: "
        "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd "
        "secret whsec_8fK3mQ9xL2pR7tV1",
        ["5257a869e7ecebeda32a", "8fK3mQ9xL2pR7tV1"],
        ["No signatures found matching the expected signature for payload"],
    ),
    "stripe-basic-auth": (
        "Sent header Authorization: Basic c2tfdGVzdF80ZUMzOUhxTHlqV0RhcmpvOg== and got 401",
        ["c2tfdGVzdF80ZUMzOUhxTHlqV0RhcmpvOg=="],
        ["Authorization: Basic [redacted]", "and got 401"],
    ),
    # free text, JSON, kwargs, other SDKs
    "free-text-password": (
        "login to smtp.example.com failed with password Hunter2! for ops@example.com",
        ["Hunter2"],
        ["login to smtp.example.com failed", "for ops@example.com"],
    ),
    "free-text-secret-colon": (
        "config error: secret: hunter-two-three, region: eu",
        ["hunter-two-three"],
        ["config error", "region: eu"],
    ),
    "kwargs-repr": (
        "connect() got an unexpected keyword argument; called with (host='db', "
        "password='Sup3r;Secret', api_key=abc123XYZ, timeout=5)",
        ["Sup3r;Secret", "abc123XYZ"],
        ["host='db'", "timeout=5"],
    ),
    "json-client-secret": (
        'POST /oauth/token {"grant_type": "client_credentials", "client_id": "shop-app", '
        '"client_secret": "8Xz!q2 w9"}',
        ["8Xz!q2 w9"],
        ['"client_id": "shop-app"', '"grant_type": "client_credentials"'],
    ),
    "github-token-user": (
        "fatal: unable to access 'https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/"
        "acme/app.git/': The requested URL returned error: 403",
        ["16C7e42F292c6912E7710c838347Ae178B4a"],
        ["github.com/acme/app.git/", "returned error: 403"],
    ),
    "google-key-param": (
        "REQUEST_DENIED for https://maps.googleapis.com/maps/api/geocode/json?address=Main+St"
        "&key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        ["9tSrke72PouQMnMX-a7eZSW0jkFMBWY"],
        ["REQUEST_DENIED", "address=Main+St"],
    ),
    "slack-bot-token": (
        "invalid_auth: token xoxb-2049537139-1125410927461-Kp1mHJ2l8rY0c1QmFqLnXxYz rejected",
        ["Kp1mHJ2l8rY0c1QmFqLnXxYz"],
        ["invalid_auth", "rejected"],
    ),
    "jwt-in-text": (
        "token rejected: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U (expired)",
        ["eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dozjgNryP4J3jVmNHl0w5N"],
        ["token rejected", "(expired)"],
    ),
    "oauth-fragment": (
        "redirect to https://app.example.com/cb#access_token=2YotnFZFEjr1zCsicMWpAA&state=xyz",
        ["2YotnFZFEjr1zCsicMWpAA"],
        ["https://app.example.com/cb#access_token=", "state=xyz"],
    ),
    "exception-class-names-are-not-secrets": (
        "KeyError: 'payments'; TokenExpiredError: session timed out",
        [],
        ["KeyError: 'payments'", "TokenExpiredError: session timed out"],
    ),
    "harmless-urls-unchanged": (
        "GET https://api.example.com:8443/v1/users/bob@example.com and "
        "https://social.example/@alice?page=2 timed out",
        [],
        [
            "https://api.example.com:8443/v1/users/bob@example.com",
            "https://social.example/@alice?page=2 timed out",
        ],
    ),
    "pem-private-key": (
        "could not load key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq98rJ\n"
        "-----END RSA PRIVATE KEY----- is encrypted",
        ["MIIEpAIBAAKCAQEA7bq98rJ"],
        ["could not load key", "is encrypted"],
    ),
}


@pytest.mark.parametrize(("message", "secrets", "kept"), REAL_WORLD.values(), ids=REAL_WORLD.keys())
def test_real_world_messages(message, secrets, kept):
    redacted = redact(message)
    for secret in secrets:
        assert secret not in redacted, redacted
    for text in kept:
        assert text in redacted, redacted
    assert redact(redacted) == redacted  # idempotent: redacting twice changes nothing


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "DB_PASSWORD",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "apikey",
        "access_token",
        "accessToken",
        "refresh_token",
        "client_secret",
        "clientSecret",
        "secret",
        "token",
        "key",
        "sig",
        "signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "auth",
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "Set-Cookie",
        "session_id",
        "sessionid",
        "JSESSIONID",
        "PHPSESSID",
        "passwd",
        "pwd",
        "passphrase",
        "private_key",
        "password_hash",
        "aws_secret_access_key",
        "otp",
        "jwt",
        "csrftoken",
        "auth_token",
        "x-auth-token",
        "api%5Fkey",
    ],
)
def test_sensitive_names(name):
    assert is_sensitive(name)


@pytest.mark.parametrize(
    "name",
    [
        "author",
        "monkey",
        "status_code",
        "token_type",
        "KeyError",
        "TokenExpiredError",
        "keys",
        "user",
        "amount",
        "host",
        "region",
        "grant_type",
        "client_id",
        "bypass",
        "state",
    ],
)
def test_ordinary_names(name):
    assert not is_sensitive(name)


def test_extra_names_and_patterns_from_settings(settings):
    text = "tenant=acme pin=4711 ref ACME-7F3K-99QX-LL2M; order 42"
    assert redact(text) == text
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "REDACT": {
            "NAMES": ["pin"],
            "PATTERNS": [r"ACME(?:-[0-9A-Z]{4}){3}", r"tenant=(?P<secret>\w+)"],
        },
    }
    assert redact(text) == "tenant=[redacted] pin=[redacted] ref [redacted]; order 42"


def test_bad_extra_patterns_are_skipped_not_fatal(settings):
    # manage.py check reports them (resilience.E0xx); at run time redaction carries on.
    settings.RESILIENCE = {**settings.RESILIENCE, "REDACT": {"PATTERNS": ["(unclosed", "", "q?"]}}
    assert redact("password=hunter2 x") == "password=[redacted] x"


def test_known_secrets_are_redacted_wherever_they_are():
    error = ConnectionError("server said: hunter2 is wrong")
    assert "hunter2" not in describe_error(error, secrets=("hunter2",))


def test_a_secret_cut_by_the_length_bound_is_still_redacted():
    text = describe_error(RuntimeError("x" * 1990 + " password=hunter2-is-long"))
    assert "hunter" not in text


def test_describe_error_redacts_known_secrets():
    # Known secrets (the Redis backend's passwords) are redacted wherever they appear.
    assert describe_error(OSError("auth hunter2 refused"), secrets=("", "hunter2")) == (
        "OSError: auth [redacted] refused"
    )
