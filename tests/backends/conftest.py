"""Backend tests use the private Redis fixtures of tests/conftest.py."""

import pytest

# The shared contract suite is a plain module imported by test modules: rewrite its asserts too.
pytest.register_assert_rewrite("tests.backends.contract")
