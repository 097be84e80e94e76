"""Settings of the hang site: the helper processes' settings (test database, ``RESILIENCE``)."""

from tests.support.procsettings import *  # noqa: F403

ROOT_URLCONF = "tests.support.hangsite.urls"
# Transitions are logged at WARNING; the site trips its circuit on purpose.
LOGGING = {"version": 1, "disable_existing_loggers": False}
