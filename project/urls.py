"""URLs of the demo project."""

from django.contrib import admin
from django.urls import include, path

from project.demo import views

urlpatterns = [
    path("", views.index, name="demo-index"),
    path("upstream/", views.upstream_view, name="demo-upstream"),
    path("upstream/control/", views.control, name="demo-control"),
    path("protected/", views.protected, name="demo-protected"),
    path("unrelated/", views.unrelated, name="demo-unrelated"),
    path("resilience/", include("resilience.urls")),
    path("admin/", admin.site.urls),
]
