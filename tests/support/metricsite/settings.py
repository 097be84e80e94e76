"""Settings of the metrics site: the helper processes' settings (test database, ``RESILIENCE``)."""

from tests.support.procsettings import *  # noqa: F403

ROOT_URLCONF = "tests.support.metricsite.urls"
LOGGING = {"version": 1, "disable_existing_loggers": False}
