"""Fixtures of the backend tests. The private Redis servers (``redis_proc``, ``redis_url``) and
``clock`` come from tests/conftest.py; helpers that are not fixtures are in redis_helpers.py."""

import pytest

from tests.backends.redis_helpers import make_backend

# The shared contract suite is a plain module imported by test modules: rewrite its asserts too.
pytest.register_assert_rewrite("tests.backends.contract", "tests.backends.history_contract")


@pytest.fixture
def redis_backend(redis_url, clock):
    backend = make_backend(redis_url, clock)
    yield backend
    backend.close()
