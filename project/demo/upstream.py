"""The flaky upstream's switch: healthy, failing or slow, shared through Django's cache."""

from django.core.cache import cache

MODES = ("healthy", "failing", "slow")
KEY = "demo:upstream-mode"
SLOW_SECONDS = 2.0


def get_mode() -> str:
    mode = cache.get(KEY)
    return mode if mode in MODES else "healthy"


def set_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    cache.set(KEY, mode, timeout=None)
