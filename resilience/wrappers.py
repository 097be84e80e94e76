"""The wrapper of a protected function or coroutine: one template, compiled in two flavours.

Every call of a decorated function runs these steps: admit (the route's lane, else
``Breaker._enter``), refuse (raise the rejection or answer with the fallback), run the call,
judge and record a failure, count a success. They are written once, in ``TEMPLATE``: the
coroutine flavour is the template as it stands, the function flavour is the same text
without its ``async``/``await`` keywords. Both are compiled once, when this module is
imported.

Why a template and not shared helper functions: this is the hot path of every protected call,
and on CPython 3.11 each Python call it made costs about 400 instructions (callgrind). Measured
with ``python -m benchmarks.instructions`` (benchmarks/README.md, "One call path"): the steps
as shared helpers (admit, refuse, settle) cost the sync ok path +1,280 instructions (+30 %) and
the open path +1,850; generated from one template the wrappers run the same instructions as
the two hand-written twins they replace.

The flavours differ only in what the breaker hands them (``Breaker._wrap_function`` and
``_wrap_coroutine``): ``run(route, args, kwargs)``, for a call that is not ``route.direct``
(retries; for a coroutine also the call timeout), and ``fall_back(exc, args, kwargs)``. The
compiled source is registered with ``linecache``, so tracebacks through a protected call show
its lines.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Callable
from typing import Any

from resilience.policies import registry
from resilience.stats import SUCCESS

# The coroutine flavour; the function flavour is this without "async " and "await ".
# ``make(breaker, func, run, fall_back)`` returns the wrapper of ``func``. The steps read closure
# variables (cheaper than attribute lookups) and, when the route's lane is live, skip
# ``_enter()``: a closed circuit admits through the lane (its shared ticket), an open one is
# refused by it, any other state is asked of the backend directly; a success the lane counts
# needs no ``_succeeded()``. A rejection is raised in the wrapper itself, never re-raised on its
# way out.
TEMPLATE = """\
def make(breaker, func, run, fall_back):
    counts = breaker._counts

    async def wrapper(*args, **kwargs):
        route = breaker._route
        lane = route.lane
        if (
            lane is not None
            and route.epoch == registry.epoch
            and ((ticket := lane.ticket) is not None or lane.live)
        ):
            if ticket is None:
                ticket = lane.refusal(route.policy)
                if ticket is None:
                    ticket = breaker._acquire(route)
            started = 0  # a lane's calls are neither timed nor watched
            watch = None
        else:
            call = breaker._enter()
            if call is None:  # not counted: a disabled circuit
                return await func(*args, **kwargs)
            route, ticket, started, watch = call
            lane = route.lane
        if not ticket.admitted:
            if breaker.fallback is None:
                raise breaker._refused(route, ticket)
            return await fall_back(breaker._refused(route, ticket), args, kwargs)
        try:
            if route.direct:
                result = await func(*args, **kwargs)
            else:
                result = await run(route, args, kwargs)
        except BaseException as exc:
            if breaker._failed(route, ticket, started, watch, exc):  # True: use the fallback
                return await fall_back(exc, args, kwargs)
            raise
        if lane is not None and lane.ok(ticket, route.policy):  # counted by the lane
            counts[SUCCESS] += 1
        else:
            breaker._succeeded(route, ticket, started, watch, result)
        return result

    return wrapper
"""

_KEYWORDS = re.compile(r"\b(?:async|await) ")

# What a wrapper factory is: make(breaker, func, run, fall_back) -> wrapper.
Factory = Callable[..., Callable[..., Any]]


def render(asynchronous: bool) -> str:
    """The source of one flavour (the coroutine's, or the function's without the keywords)."""
    return TEMPLATE if asynchronous else _KEYWORDS.sub("", TEMPLATE)


def _compile(asynchronous: bool) -> Factory:
    source = render(asynchronous)
    filename = f"<resilience.wrappers: {'coroutine' if asynchronous else 'function'}>"
    # As attrs does for its generated methods: tracebacks and debuggers find the lines here.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec")
    # The template's globals; __name__ attributes warnings and log records made in it here.
    names: dict[str, Any] = {"__name__": __name__, "registry": registry, "SUCCESS": SUCCESS}
    namespace: dict[str, Any] = {}
    exec(code, names, namespace)  # noqa: S102  # a constant template: no outside input reaches it
    factory: Factory = namespace["make"]
    return factory


make_function = _compile(asynchronous=False)
make_coroutine = _compile(asynchronous=True)
