"""Settings for the test suite: SQLite by default, PostgreSQL when DATABASE_URL says so."""

import os
from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

SECRET_KEY = "tests-only-not-secret"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "resilience",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tests.support.csp.ContentSecurityPolicyMiddleware",  # off unless a test sets a policy
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///:memory:")}
# Concurrent runs (two checkouts, CI next to a developer) must not share a test database.
DATABASES["default"]["TEST"] = {"NAME": f"test_resilience_{os.getpid()}"}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Background writers (events, policy creation) write next to the test thread: take the
    # write lock at BEGIN and wait for it, instead of failing a read-then-write upgrade.
    # Django 4.2 has no transaction_mode (5.1+): it waits for the lock only (noxfile.py).
    DATABASES["default"]["OPTIONS"] = {"timeout": 30}
    if django.VERSION >= (5, 1):
        DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["TEST"] = {
        "NAME": str(
            Path(os.environ.get("TMPDIR", "/tmp")) / f"test_resilience_{os.getpid()}.sqlite3"
        )
    }
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# TRACING off: the suite runs the call path of a site without the otel extra (its lanes); the
# tests of resilience.tracing turn it on (tests/observability/test_otel.py).
RESILIENCE = {"BACKEND": "resilience.backends.memory.MemoryBackend", "TRACING": False}
CELERY_TASK_ALWAYS_EAGER = True
# Never a system broker: the suite's Celery app (tests/support/celeryworker.py) runs tasks eagerly;
# tests with a real worker start a private redis-server.
CELERY_BROKER_URL = "memory://"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"resilience": {"level": "INFO"}},
}
