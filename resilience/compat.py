"""Small shims across the supported Django versions (4.2 LTS to the newest)."""

import django
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import models

# Django 6.1's admin puts the object-tools block in one row with the page title (before, it
# opened the content): the app's panels then render at the start of the content block instead.
PANELS_IN_CONTENT = django.VERSION >= (6, 1)


def check_constraint(condition: models.Q, name: str) -> models.CheckConstraint:
    """``CheckConstraint`` whose keyword became ``condition`` in Django 5.1 (``check`` before)."""
    if django.VERSION >= (5, 1):
        return models.CheckConstraint(condition=condition, name=name)
    # django-stubs describe the newest Django, which no longer has ``check``.
    return models.CheckConstraint(check=condition, name=name)  # type: ignore[call-arg]  # pragma: no cover


def default_mailer() -> BaseEmailBackend:
    """A new, unconnected instance of the project's default e-mail backend.

    Django 6.1 configures e-mail with ``MAILERS`` and hands out backends as ``mail.mailers``
    (``mailers.default`` is built from the ``EMAIL_*`` settings while a project has not moved
    to ``MAILERS``); ``mail.get_connection()`` is deprecated there.
    """
    if django.VERSION >= (6, 1):
        return mail.mailers.default
    return mail.get_connection(fail_silently=False)
