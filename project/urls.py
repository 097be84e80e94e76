"""URLs of the demo project."""

from django.contrib import admin
from django.urls import path

from project.demo import views

urlpatterns = [
    path("", views.index, name="demo-index"),
    path("upstream/", views.upstream_view, name="demo-upstream"),
    path("upstream/control/", views.control, name="demo-control"),
    path("admin/", admin.site.urls),
]
