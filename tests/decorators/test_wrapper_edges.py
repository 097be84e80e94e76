"""Edge cases of the generated wrappers (``resilience.wrappers``): what ``functools.wraps``
keeps, methods, keyword-only arguments, exceptions that are not failures, fallbacks,
cancellation, recursion, and a policy edited while calls run."""

import asyncio
import inspect
import threading
import time
import traceback
import typing
import warnings

import pytest

from resilience import BulkheadFullError, CircuitOpenError, breaker, circuit_breaker
from resilience.backends import get_backend
from resilience.policies import registry
from tests.decorators.helpers import Boom, use_policies
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


class Custom(BaseException):
    """A BaseException of the caller's own: counted, like any exception not listed as exempt."""


def _counts(name):
    snap = breaker(name).snapshot()
    return snap["state"], snap["consecutive_failures"], snap["half_open_permits"]


def test_wraps_keeps_name_doc_signature_annotations_and_the_wrapped_function():
    def fetch(order_id: int, /, amount: float, *, currency: str = "EUR") -> dict:
        """Fetch one order."""
        return {"id": order_id, "amount": amount, "currency": currency}

    async def afetch(order_id: int, *, currency: str = "EUR") -> dict:
        """Fetch one order, awaited."""
        return {"id": order_id, "currency": currency}

    sync, coro = circuit_breaker("meta")(fetch), circuit_breaker("meta")(afetch)
    for wrapper, func in ((sync, fetch), (coro, afetch)):
        assert wrapper.__wrapped__ is func
        assert (wrapper.__name__, wrapper.__qualname__, wrapper.__doc__, wrapper.__module__) == (
            func.__name__,
            func.__qualname__,
            func.__doc__,
            func.__module__,
        )
        assert inspect.signature(wrapper) == inspect.signature(func)
        assert typing.get_type_hints(wrapper) == typing.get_type_hints(func)
        assert wrapper.breaker.name == "meta"
    assert inspect.iscoroutinefunction(coro) and not inspect.iscoroutinefunction(sync)
    assert sync(1, 2.5, currency="USD") == {"id": 1, "amount": 2.5, "currency": "USD"}
    assert asyncio.run(coro(2, currency="CHF")) == {"id": 2, "currency": "CHF"}
    with pytest.raises(TypeError):
        sync(1, 2.5, "USD")  # keyword-only stays keyword-only: the call itself says so


def test_keyword_arguments_named_like_the_wrappers_own_names_reach_the_function():
    @circuit_breaker("kw", fallback=lambda exc, *a, **kw: ("fallback", a, kw))
    def call(*args, **kwargs):
        if kwargs.get("fail"):
            raise Boom()
        return args, kwargs

    names = {"func": 1, "breaker": 2, "run": 3, "fall_back": 4, "route": 5, "ticket": 6}
    assert call("a", args=1, kwargs=2, **names) == (("a",), {"args": 1, "kwargs": 2, **names})
    assert call("a", fail=True, func=1) == ("fallback", ("a",), {"fail": True, "func": 1})


def test_methods_classmethods_and_staticmethods():
    class Client:
        base = 10

        @circuit_breaker("methods")
        def get(self, x):
            return self.base + x

        @classmethod
        @circuit_breaker("methods")
        def build(cls, x):
            return cls.base * x

        @staticmethod
        @circuit_breaker("methods")
        def pure(x):
            return -x

        @circuit_breaker("methods")
        async def aget(self, x):
            return self.base - x

    client = Client()
    assert (client.get(1), Client.build(2), client.build(3), Client.pure(4)) == (11, 20, 30, -4)
    assert asyncio.run(client.aget(1)) == 9
    assert Client.get.__qualname__.endswith("Client.get")
    assert inspect.iscoroutinefunction(Client.aget)


@pytest.mark.parametrize(
    "exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError]
)
def test_exits_and_cancellations_are_not_failures_nor_answered_by_the_fallback(exc_type, settings):
    use_policies(settings, exits={"failure_threshold": 1})

    @circuit_breaker("exits", fallback=lambda exc: "fallback")
    def interrupted():
        raise exc_type()

    with pytest.raises(exc_type):
        interrupted()
    assert _counts("exits") == ("closed", 0, 0)


def test_a_base_exception_of_the_callers_own_is_a_failure_like_before(settings):
    use_policies(settings, custom={"failure_threshold": 2})

    @circuit_breaker("custom")
    def sync():
        raise Custom()

    @circuit_breaker("custom", fallback=lambda exc: f"fallback {type(exc).__name__}")
    async def coro():
        raise Custom()

    with pytest.raises(Custom):
        sync()
    assert _counts("custom")[:2] == ("closed", 1)
    assert asyncio.run(coro()) == "fallback Custom"  # counted: answered by the fallback
    assert _counts("custom")[0] == "open"


def test_fallbacks_of_refusals_and_of_failures_sync_and_async(settings):
    use_policies(settings, fb={"failure_threshold": 1})
    seen = []

    def fallback(exc, *args, **kwargs):
        seen.append((type(exc).__name__, args, kwargs))
        return "sync answer"

    async def afallback(exc, *args, **kwargs):
        return "async answer"

    @circuit_breaker("fb", fallback=fallback)
    def sync(x, *, y):
        raise Boom()

    @circuit_breaker("fb", fallback=afallback)
    async def coro(x):
        raise Boom()

    @circuit_breaker("fb", fallback=fallback)
    async def coro_sync_fallback(x):
        return "never"

    assert sync(1, y=2) == "sync answer"  # the failure, then open
    assert sync(3, y=4) == "sync answer"  # the refusal
    assert asyncio.run(coro(5)) == "async answer"
    assert asyncio.run(coro_sync_fallback(6)) == "sync answer"
    assert seen == [
        ("Boom", (1,), {"y": 2}),
        ("CircuitOpenError", (3,), {"y": 4}),
        ("CircuitOpenError", (6,), {}),
    ]


def test_a_fallback_that_raises_propagates_its_own_error(settings):
    use_policies(settings, fbr={"failure_threshold": 1})

    def fallback(exc):
        raise RuntimeError("fallback broke") from exc

    @circuit_breaker("fbr", fallback=fallback)
    def call():
        raise Boom()

    with pytest.raises(RuntimeError, match="fallback broke") as info:
        call()
    assert isinstance(info.value.__cause__, Boom)
    assert _counts("fbr")[0] == "open"


def test_a_coroutine_traceback_shows_the_wrappers_line_and_the_functions():
    @circuit_breaker("atraced")
    async def broken():
        raise Boom("down")

    with pytest.raises(Boom) as info:
        asyncio.run(broken())
    frames = traceback.extract_tb(info.value.__traceback__)
    wrapper = next(f for f in frames if f.filename == "<resilience.wrappers: coroutine>")
    assert wrapper.line == "result = await func(*args, **kwargs)"
    assert frames[-1].name == "broken" and frames[-1].line == 'raise Boom("down")'


@pytest.fixture(params=["memory", "redis"])
def any_backend(request, settings, clock):
    """The memory backend, or a Redis one on the same manual clock (``clock.advance`` moves
    both)."""
    options = {"clock": clock}
    path = "resilience.backends.memory.MemoryBackend"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        options |= {"url": url, "prefix": f"edges{time.monotonic_ns()}", "socket_timeout": 2.0}
        path = "resilience.backends.redis.RedisBackend"
    settings.RESILIENCE = {"BACKEND": path, "OPTIONS": options, "TRACING": False}
    yield
    get_backend().flush()


async def test_cancelling_half_open_trials_and_bulkhead_calls_gives_back_permits_and_slots(
    any_backend, clock, settings
):
    # Names of this test's own: the per-process counters outlive a test (test_metrics.py
    # reads its "capped" circuit's absolute counts).
    use_policies(
        settings,
        **{
            "edge-trial": {"failure_threshold": 1, "recovery_timeout": 5, "half_open_max_calls": 2},
            "edge-capped": {"max_concurrent_calls": 2},
        },
    )
    started = asyncio.Event()

    @circuit_breaker("edge-trial")
    async def trial(fail=False):
        if fail:
            raise Boom()
        started.set()
        await asyncio.sleep(3600)

    @circuit_breaker("edge-capped")
    async def capped():
        started.set()
        await asyncio.sleep(3600)

    with pytest.raises(Boom):
        await trial(fail=True)
    clock.advance(5)
    calls = (
        (trial, "half_open_permits", "edge-trial", CircuitOpenError),
        (capped, "in_flight", "edge-capped", BulkheadFullError),
    )
    for func, key, name, refusal in calls:
        tasks = [asyncio.create_task(func()) for _ in range(2)]
        await started.wait()
        await asyncio.sleep(0)
        assert breaker(name).snapshot()[key] == 2
        with pytest.raises(refusal) as info:  # all taken
            await func()
        assert type(info.value) is refusal
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        get_backend().flush()  # Redis: the slots given back have landed
        assert breaker(name).snapshot()[key] == 0
        started.clear()
    assert breaker("edge-trial").state == "half_open"  # cancelled trials are not failures
    assert breaker("edge-capped").snapshot()["consecutive_failures"] == 0


def test_a_protected_function_calling_itself(settings):
    use_policies(settings, rec={"failure_threshold": 2})
    depth = []

    @circuit_breaker("rec")
    def walk(n, fail_at=None):
        depth.append(n)
        if n == fail_at:
            raise Boom()
        return n if n == 0 else walk(n - 1, fail_at)

    assert walk(5) == 0 and _counts("rec") == ("closed", 0, 0)
    # The innermost failure is counted by each level it passes: the second opens the circuit,
    # and the outer levels' reports of it arrive on an open circuit.
    with pytest.raises(Boom):
        walk(3, fail_at=0)
    assert _counts("rec")[0] == "open"
    depth.clear()
    with pytest.raises(CircuitOpenError):
        walk(3)
    assert depth == []


def test_recursion_in_a_half_open_circuit_holds_one_permit_and_gives_it_back(clock, settings):
    use_policies(settings, rech={"failure_threshold": 1, "recovery_timeout": 5})

    @circuit_breaker("rech")
    def walk(n):
        if n < 0:
            raise Boom()
        return n if n == 0 else walk(n - 1)

    with pytest.raises(Boom):
        walk(-1)
    clock.advance(5)
    # The trial holds the one permit; its recursive call is refused, which the trial does not
    # count as a failure (an inner refusal never is): the permit comes back.
    with pytest.raises(CircuitOpenError):
        walk(2)
    state, _, permits = _counts("rech")
    assert (state, permits) == ("half_open", 0)
    assert walk(0) == 0
    assert _counts("rech")[0] == "closed"


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize(
    "edit",
    [
        {},
        {"max_concurrent_calls": 1},  # the call finishes while the route is a tracked one
        {"mode": "forced_open"},
        {"failure_threshold": 1},
    ],
)
def test_a_policy_edited_in_the_admin_while_a_lane_call_runs(edit, fail):
    policy = BreakerPolicyFactory(name="edited", failure_threshold=2)
    inside, release = threading.Event(), threading.Event()
    outcome = []

    @circuit_breaker("edited")
    def call(fail):
        inside.set()
        assert release.wait(10)
        if fail:
            raise Boom()
        return "ok"

    release.set()
    assert call(False) == "ok"  # the route is built: the next call goes through the lane
    release.clear()
    worker = threading.Thread(target=lambda: outcome.append(_run(call, fail)))
    worker.start()
    assert inside.wait(10)
    assert call.breaker._route.lane is not None
    for field, value in edit.items():
        setattr(policy, field, value)
    policy.save()
    registry.get("edited")  # in force from the next call on
    release.set()
    worker.join(10)
    assert outcome == ["Boom" if fail else "ok"]
    snap = breaker("edited").snapshot()
    assert (snap["in_flight"] or 0, snap["half_open_permits"]) == (0, 0)
    # Counted under the policy the call was admitted by, on the state the edit kept.
    forced = edit.get("mode") == "forced_open"
    assert (snap["state"], snap["consecutive_failures"]) == (
        "forced_open" if forced else "closed",
        int(fail),
    )
    if not forced:
        assert call(False) == "ok"  # under the edited policy (a slot taken and given back)
        assert (breaker("edited").snapshot()["in_flight"] or 0) == 0


def _run(call, fail):
    try:
        return call(fail)
    except Boom:
        return "Boom"


def test_a_warning_pointed_at_the_wrapper_is_attributed_to_the_package():
    """A warning whose stacklevel lands on the wrapper's frame is filtered by module like one
    from the package (the generated code's globals carry ``__name__``; without it the module
    was the template's file name, ``<resilience.wrappers: function>``)."""

    @circuit_breaker("warned")
    def deprecated():
        warnings.warn("old", DeprecationWarning, stacklevel=2)  # the caller: the wrapper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"resilience\.")
        with pytest.raises(DeprecationWarning, match="old"):
            deprecated()
