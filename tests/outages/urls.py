"""The admin and ``resilience.urls`` together, as a site mounts them."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("resilience/", include("resilience.urls")),
]
