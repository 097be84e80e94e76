"""The wrappers of functions and coroutines (``resilience.wrappers``): one template, two
flavours that differ only in ``async``/``await``; tracebacks through them show their lines."""

import ast
import asyncio
import inspect
import traceback

import pytest

from resilience import circuit_breaker, wrappers
from tests.decorators.helpers import Boom

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


def _shape(source):
    """The template's syntax tree without the async keywords: async nodes as their sync ones,
    ``await x`` as ``x``."""

    class Unasync(ast.NodeTransformer):
        def visit_Await(self, node):
            return self.visit(node.value)

        def visit_AsyncFunctionDef(self, node):
            self.generic_visit(node)
            return ast.FunctionDef(**{f: getattr(node, f) for f in node._fields})

    return ast.dump(Unasync().visit(ast.parse(source)))


def test_the_function_flavour_is_the_coroutine_flavour_without_async_and_await():
    function, coroutine = wrappers.render(False), wrappers.render(True)
    assert "async" not in function and "await" not in function
    assert coroutine.count("await ") == 5  # a disabled circuit's call, the call, run, fallbacks
    assert _shape(function) == _shape(coroutine)


def test_each_flavour_makes_its_kind_of_wrapper():
    @circuit_breaker("flavours")
    def plain():
        return 1

    @circuit_breaker("flavours")
    async def coro():
        return 2

    assert not inspect.iscoroutinefunction(plain) and plain() == 1
    assert inspect.iscoroutinefunction(coro) and asyncio.run(coro()) == 2
    assert plain.__wrapped__.__name__ == "plain" and coro.__name__ == "coro"


def test_a_traceback_through_a_wrapper_shows_its_source_line():
    @circuit_breaker("traced")
    def broken():
        raise Boom("down")

    with pytest.raises(Boom) as info:
        broken()
    frames = traceback.extract_tb(info.value.__traceback__)
    wrapper = next(f for f in frames if f.filename.startswith("<resilience.wrappers"))
    assert wrapper.filename == "<resilience.wrappers: function>"
    assert wrapper.line == "result = func(*args, **kwargs)"
