"""Stored, logged and mailed error text: bounded, one line, obvious secrets redacted."""

import pytest

from resilience.sanitize import ERROR_MAX_CHARS, describe_error, one_line, redact


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
    # Known secrets (the Redis backend's passwords) are redacted wherever they appear.
    assert describe_error(OSError("auth hunter2 refused"), secrets=("", "hunter2")) == (
        "OSError: auth [redacted] refused"
    )
