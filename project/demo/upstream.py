"""The flaky upstream's switch: healthy, failing, slow or hanging, shared through Django's cache."""

from django.core.cache import cache

MODES = ("healthy", "failing", "slow", "hanging")
KEY = "demo:upstream-mode"
SLOW_SECONDS = 2.0
HANG_SECONDS = 60.0  # longer than any caller waits: a hang, not a slow answer


def get_mode() -> str:
    mode = cache.get(KEY)
    return mode if mode in MODES else "healthy"


def set_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    cache.set(KEY, mode, timeout=None)
