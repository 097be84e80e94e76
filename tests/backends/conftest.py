"""Backend tests use the private Redis fixtures of tests/conftest.py."""
