"""Django application configuration: where the layers are wired together."""

from importlib.util import find_spec

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from resilience import recorder


class ResilienceConfig(AppConfig):
    name = "resilience"
    verbose_name = _("Resilience")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Only registrations: no database or Redis access here (it would run during migrate).
        # These modules import the models, so (Django's idiom) they are imported only now: the
        # one deliberate place, with resilience/__init__.py, where this package imports its own
        # modules inside a function.
        from resilience import checks, events  # noqa: F401 - checks register themselves

        # The backends and the call path record transitions and manual actions through the
        # events layer above them (see resilience.recorder).
        recorder.install(events)
        if find_spec("celery") is not None:
            # Registers the shared tasks, which delivery.dispatch sends by name (an eager
            # Celery app then runs them in this process, as it did when delivery imported them).
            from resilience import tasks  # noqa: F401
