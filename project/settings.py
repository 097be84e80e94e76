"""Demo settings, read from the environment with django-environ (see README)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env(DEBUG=(bool, True), ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]))
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("SECRET_KEY", default="demo-only-insecure-key-change-me")
DEBUG = env("DEBUG")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
REDIS_URL = env("REDIS_URL", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "resilience",
    "project.demo",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "resilience.middleware.CircuitBreakerMiddleware",
    "project.demo.traffic.TrafficMiddleware",
]
ROOT_URLCONF = "project.urls"
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
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'demo.sqlite3'}")
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # resilience writes events from a background thread: avoid SQLite lock-upgrade failures.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# E-mail: EMAIL_URL (smtp://user:pass@host:port, consolemail://, filemail:///var/mail). The
# embedded demo writes alert e-mails as files under var/mail so you can read them. django-environ
# drops the first "/" of a filemail:// path (filemail:///var/mail is "var/mail"): a relative path
# is taken from the checkout, not the working directory, and filemail:////abs/path stays absolute.
EMAIL = env.email_url("EMAIL_URL", default="filemail:///var/mail")
if EMAIL.get("EMAIL_FILE_PATH"):
    EMAIL["EMAIL_FILE_PATH"] = str(BASE_DIR / EMAIL["EMAIL_FILE_PATH"])
vars().update(EMAIL)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="resilience-demo@localhost")
ADMINS = [("Demo admin", "admin@example.com")]

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    RESILIENCE_BACKEND = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {"url": REDIS_URL, "prefix": "resilience-demo"},
    }
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    RESILIENCE_BACKEND = {"BACKEND": "resilience.backends.memory.MemoryBackend", "OPTIONS": {}}
CELERY_TASK_EAGER_PROPAGATES = False
# Alerts and events a web process could not finish (broker or database down) are swept every
# minute by `celery -A project worker -B` (or `manage.py resilience drain`); see docs/alerts.md.
# beat's schedule file (celerybeat-schedule.*) under var/, not in the working directory.
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "resilience-drain": {"task": "resilience.tasks.drain_outbox", "schedule": 60.0},
}
# A hung broker must not hold the thread that publishes alerts for long.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}

# scripts/demo.sh serves on DEMO_ADDR ("[host:]port", runserver's syntax; 127.0.0.1:8000).
_demo_host, _, _demo_port = env("DEMO_ADDR", default="127.0.0.1:8000").rpartition(":")
_demo_host = _demo_host if _demo_host not in ("", "0.0.0.0", "[::]") else "127.0.0.1"
DEMO_SITE_URL = f"http://{_demo_host}:{_demo_port}"

# Background calls on payments-api, search and demo-upstream from the first request on, so the
# admin's charts have data (project/demo/traffic.py); DEMO_TRAFFIC=0 turns them off.
DEMO_TRAFFIC = env.bool("DEMO_TRAFFIC", default=True)

DEMO_POLICY = {
    "failure_threshold": 2,
    "recovery_timeout": 15,
    "slow_call_ms": 1000,
    "call_timeout_ms": 2000,
    "max_concurrent_calls": 2,
}
RESILIENCE = {
    **RESILIENCE_BACKEND,
    # Circuits created on first use (httpx's, the requests session's per-host ones) act like this.
    # The values docs/hangs.md recommends for sync workers: at most 2 calls of a circuit wait
    # on its upstream at once, a call running 1 s counts as a failure while it runs, and no call
    # waits more than 2 s.
    "DEFAULT_POLICY": DEMO_POLICY,
    # The requests client's per-host circuits are forgotten after 10 idle minutes
    # (docs/operations.md, "Idle per-host circuits").
    "IDLE_CIRCUIT_SECONDS": 600,
    "POLICIES": {
        "demo-upstream": {
            "description": "The demo's flaky upstream (switch it at /upstream/control/).",
            **DEMO_POLICY,
        },
    },
    "ALERTS": {
        "RECIPIENTS": env.list("RESILIENCE_ALERT_RECIPIENTS", default=["oncall@example.com"]),
        # Absolute admin links in the e-mails: SITE_URL, else the address scripts/demo.sh serves.
        "SITE_URL": env("SITE_URL", default=DEMO_SITE_URL),
        "CHANNELS": [{"BACKEND": "resilience.channels.EmailChannel", "OPTIONS": {}}],
    },
}
# Alert channels beyond e-mail, each when its URL is set (docs/alerts.md, "Channels").
if env("RESILIENCE_WEBHOOK_URL", default=""):
    RESILIENCE["ALERTS"]["CHANNELS"].append(
        {
            "BACKEND": "resilience.channels.WebhookChannel",
            "OPTIONS": {
                "url": env("RESILIENCE_WEBHOOK_URL"),
                "secret": env("RESILIENCE_WEBHOOK_SECRET", default=None),
            },
        }
    )
if env("RESILIENCE_SLACK_WEBHOOK_URL", default=""):
    RESILIENCE["ALERTS"]["CHANNELS"].append(
        {
            "BACKEND": "resilience.channels.SlackChannel",
            "OPTIONS": {"webhook_url": env("RESILIENCE_SLACK_WEBHOOK_URL")},
        }
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"resilience": {"handlers": ["console"], "level": "INFO"}},
}
