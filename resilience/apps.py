"""Django application configuration."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ResilienceConfig(AppConfig):
    name = "resilience"
    verbose_name = _("Resilience")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Only registrations: no database or Redis access here (it would run during migrate).
        from resilience import checks, signals  # noqa: F401
