"""Settings of helper processes spawned by tests (Celery worker, trippers): the test database."""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, RESILIENCE

DATABASES["default"]["NAME"] = os.environ["RESILIENCE_TEST_DB_NAME"]
CELERY_BROKER_URL = os.environ.get("RESILIENCE_TEST_BROKER_URL", "memory://")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("RESILIENCE_TEST_SMTP_PORT", "25"))
EMAIL_TIMEOUT = float(os.environ.get("RESILIENCE_TEST_EMAIL_TIMEOUT", "5"))
RESILIENCE = json.loads(os.environ.get("RESILIENCE_TEST_SETTINGS") or "null") or RESILIENCE
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"resilience": {"handlers": ["console"], "level": "INFO"}},
}
