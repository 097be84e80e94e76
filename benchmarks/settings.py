"""Django settings for the benchmark: SQLite in the run's temp dir, backend from the environment."""

import os
from pathlib import Path

import django

STATE_DIR = Path(os.environ.get("BENCH_STATE_DIR", "/tmp/resilience-bench"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchmarks.urls"
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
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(STATE_DIR / "bench.sqlite3"),
        # Several processes, and background threads of each (policy refresh, events writer),
        # write at once: wait for the lock instead of failing.
        "OPTIONS": {"timeout": 30},
    }
}
if django.VERSION >= (5, 1):
    # A deferred transaction that reads and then writes cannot wait for a concurrent writer
    # (SQLite answers "database is locked" at once); IMMEDIATE takes the write lock up front.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Alert e-mails go to memory; they are rendered and "sent" as on a real site.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ADMINS = [("Benchmark", "ops@example.com")]


def resilience_for(backend: str, url: str = "") -> dict:
    """The ``RESILIENCE`` setting of a run on ``backend`` ("memory" or "redis" at ``url``)."""
    # Alerts are rendered and "sent" (to memory) in the process, never through a broker.
    alerts = {"DELIVERY": "sync"}
    if backend != "redis":
        return {"BACKEND": "resilience.backends.memory.MemoryBackend", "ALERTS": alerts}
    # A generous socket timeout: the production default (50 ms) is meant to fail fast, and on a
    # busy shared machine it would make the benchmark measure the degraded local fallback.
    options = {"url": url, "prefix": "bench", "socket_timeout": 2.0}
    return {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": options,
        "ALERTS": alerts,
    }


RESILIENCE = resilience_for(os.environ.get("BENCH_BACKEND", "memory"), REDIS_URL)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Transitions are logged at WARNING by design; the benchmark trips thousands of circuits.
    "loggers": {"resilience": {"level": "ERROR"}},
}
