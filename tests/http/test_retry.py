"""resilience.retry: which errors are retried, how long it waits, and when it gives up."""

import asyncio
from types import SimpleNamespace

import httpx
import pytest
import requests

from resilience.exceptions import CircuitOpenError
from resilience.retry import TransientError, acall_with_retries, call_with_retries, is_transient


def policy(attempts=3, backoff_ms=100, max_backoff_ms=1000):
    return SimpleNamespace(
        retry_attempts=attempts, retry_backoff_ms=backoff_ms, retry_max_backoff_ms=max_backoff_ms
    )


class Flaky:
    """Fails with the given errors, in order, then returns "ok"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.args = (args, kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        TransientError("busy"),
        requests.ConnectionError(),
        requests.ReadTimeout(),
        httpx.ConnectTimeout("t"),
        httpx.ReadError("r"),
        httpx.RemoteProtocolError("p"),
    ],
)
def test_transient_errors(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError(),
        KeyError(),
        requests.HTTPError(),
        httpx.UnsupportedProtocol("u"),
        CircuitOpenError("x", 3),
        KeyboardInterrupt(),
        asyncio.CancelledError(),
    ],
)
def test_other_errors_are_not_transient(exc):
    assert not is_transient(exc)


def test_explicit_marker_wins():
    exc = ValueError()
    exc.transient = True
    assert is_transient(exc)
    timeout = TimeoutError()
    timeout.transient = False
    assert not is_transient(timeout)


def test_no_attempts_calls_once_without_retrying():
    func = Flaky(TimeoutError())
    with pytest.raises(TimeoutError):
        call_with_retries(func, (), {}, policy(attempts=0), sleep=pytest.fail)
    assert func.calls == 1


def test_retries_transient_errors_until_success_with_jittered_exponential_backoff():
    sleeps = []
    func = Flaky(TimeoutError(), ConnectionResetError(), TimeoutError())
    result = call_with_retries(func, (1,), {"b": 2}, policy(attempts=3), sleep=sleeps.append)
    assert result == "ok"
    assert func.calls == 4
    assert func.args == ((1,), {"b": 2})
    # Full jitter: attempt n waits uniformly in [0, min(cap, base * 2**(n-1))].
    assert len(sleeps) == 3
    for n, slept in enumerate(sleeps, start=1):
        assert 0 <= slept <= min(1.0, 0.1 * 2 ** (n - 1))


def test_gives_up_after_the_extra_attempts_with_the_last_error():
    last = TimeoutError("third")
    func = Flaky(TimeoutError("first"), TimeoutError("second"), last, TimeoutError("never"))
    sleeps = []
    with pytest.raises(TimeoutError) as info:
        call_with_retries(func, (), {}, policy(attempts=2), sleep=sleeps.append)
    assert info.value is last
    assert func.calls == 3
    assert len(sleeps) == 2


def test_non_transient_errors_are_not_retried():
    func = Flaky(ValueError("bug"))
    with pytest.raises(ValueError):
        call_with_retries(func, (), {}, policy(), sleep=pytest.fail)
    assert func.calls == 1


def test_backoff_doubles_up_to_the_cap(monkeypatch):
    monkeypatch.setattr("tenacity.wait.random.uniform", lambda low, high: high)  # top of jitter
    sleeps = []
    func = Flaky(*[TimeoutError()] * 11)
    with pytest.raises(TimeoutError):
        call_with_retries(
            func,
            (),
            {},
            policy(attempts=10, backoff_ms=100, max_backoff_ms=600),
            sleep=sleeps.append,
        )
    assert func.calls == 11
    assert sleeps == pytest.approx([0.1, 0.2, 0.4] + [0.6] * 7)


def test_retry_after_hint_lengthens_the_wait():
    sleeps = []
    func = Flaky(TransientError("slow down", retry_after=0.75))
    assert (
        call_with_retries(
            func, (), {}, policy(backoff_ms=1, max_backoff_ms=1000), sleep=sleeps.append
        )
        == "ok"
    )
    assert sleeps == [0.75]


def test_retry_after_hint_longer_than_the_cap_ends_the_retries():
    func = Flaky(TransientError("come back tomorrow", retry_after=86400))
    with pytest.raises(TransientError):
        call_with_retries(func, (), {}, policy(max_backoff_ms=2000), sleep=pytest.fail)
    assert func.calls == 1


def test_stops_before_sleeping_when_the_circuit_opened():
    func = Flaky(TimeoutError(), TimeoutError())
    with pytest.raises(TimeoutError):
        call_with_retries(func, (), {}, policy(), should_stop=lambda: True, sleep=pytest.fail)
    assert func.calls == 1


def test_stops_after_sleeping_when_the_circuit_opened_meanwhile():
    opened = []
    first = TimeoutError("first")
    func = Flaky(first, TimeoutError("second"))
    with pytest.raises(TimeoutError) as info:
        call_with_retries(
            func,
            (),
            {},
            policy(),
            should_stop=lambda: bool(opened),
            sleep=lambda seconds: opened.append(seconds),
        )
    assert info.value is first
    assert func.calls == 1


async def test_async_retries_and_sleeps_without_blocking():
    sleeps = []

    async def fake_sleep(seconds):
        sleeps.append(seconds)

    func = Flaky(httpx.ConnectError("refused"), TransientError("busy", retry_after=0.2))

    async def call(x):
        return func(x)

    assert await acall_with_retries(call, (5,), {}, policy(), sleep=fake_sleep) == "ok"
    assert func.calls == 3
    assert func.args == ((5,), {})
    assert len(sleeps) == 2 and sleeps[1] >= 0.2


async def test_async_stops_when_the_circuit_opened():
    func = Flaky(TimeoutError(), TimeoutError())

    async def call():
        return func()

    async def no_sleep(seconds):
        raise AssertionError("slept")

    with pytest.raises(TimeoutError):
        await acall_with_retries(call, (), {}, policy(), should_stop=lambda: True, sleep=no_sleep)
    assert func.calls == 1
