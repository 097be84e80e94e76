"""``path("resilience/", include("resilience.urls"))`` mounts ``health/`` and ``metrics/``."""

from django.urls import path

from resilience import views

urlpatterns = [
    path("health/", views.health, name="resilience-health"),
    path("metrics/", views.prometheus, name="resilience-metrics"),
]
