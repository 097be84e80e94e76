"""Small shims across the supported Django versions (4.2 LTS to the newest)."""

import django
from django.db import models


def check_constraint(condition: models.Q, name: str) -> models.CheckConstraint:
    """``CheckConstraint`` whose keyword became ``condition`` in Django 5.1 (``check`` before)."""
    if django.VERSION >= (5, 1):
        return models.CheckConstraint(condition=condition, name=name)
    # django-stubs describe the newest Django, which no longer has ``check``.
    return models.CheckConstraint(check=condition, name=name)  # type: ignore[call-arg]  # pragma: no cover
